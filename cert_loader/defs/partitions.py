"""Districts are the partitions of every CERT asset; the sensor and `cert-loader register` add them (DESIGN.md section 8)."""

from __future__ import annotations

import dagster as dg

DISTRICT_PARTITIONS = "district"
districts = dg.DynamicPartitionsDefinition(name=DISTRICT_PARTITIONS)


def register_districts(instance: dg.DagsterInstance, names: list[str]) -> list[str]:
    """Add the districts not yet known to the instance; return the ones added."""
    from cert_loader.inputs import check_district_name

    for name in names:
        check_district_name(name)
    known = set(instance.get_dynamic_partitions(DISTRICT_PARTITIONS))
    new = [n for n in dict.fromkeys(names) if n not in known]
    if new:
        instance.add_dynamic_partitions(DISTRICT_PARTITIONS, new)
    return new
