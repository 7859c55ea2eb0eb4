"""The names the whole product shares, defined once: stores, strategies, atomic modes, the district column, the loader's schema."""

from __future__ import annotations

# The relational stores, in the order they are loaded, reported and committed (DESIGN.md section 1).
PG_STORES: tuple[str, ...] = ("ids", "hcp1", "hcp2", "adb")
# The graph store (Neo4j over Bolt).
GRAPH_STORE = "sp"
ALL_STORES: tuple[str, ...] = PG_STORES + (GRAPH_STORE,)

# DESIGN.md section 6; the first is the default.
STRATEGIES: tuple[str, ...] = ("insert", "upsert", "merge", "replace")
DEFAULT_STRATEGY = STRATEGIES[0]
# Strategies that match source rows to existing rows and so need a key.
KEYED_STRATEGIES: tuple[str, ...] = ("upsert", "merge")

# auto: two-phase when every store supports it, else store after store; required: refuse without it;
# off: store after store even where two-phase is possible (DESIGN.md section 5, point 4).
ATOMIC_MODES: tuple[str, ...] = ("auto", "required", "off")

# What the in-transaction verification compares (DESIGN.md section 7, issue 12): counts and FKs, or also
# every value of every loaded table against its file (verify/content.py). The first is the default: content
# costs ~2.7 s per 1M rows of 14 mixed columns (365k rows/s on 2 cores), ~1.6 s over the seed's 750k rows.
VERIFY_MODES: tuple[str, ...] = ("counts", "content")
DEFAULT_VERIFY = VERIFY_MODES[0]

# Every relational CERT table has this column; a load touches only its district's rows (section 2).
DISTRICT_COLUMN = "district_id"

# The loader's own schema in every store (created by `cert-loader mark`): staging tables for upsert and
# merge, and the commit decisions of loads without the graph (transaction.py).
LOADER_SCHEMA = "cert_loader"
DECISION_TABLE = "load_decision"
# The decision table schema-qualified, as errors name it and to_regclass finds it (a plain name, no quoting needed).
DECISION_QUALNAME = f"{LOADER_SCHEMA}.{DECISION_TABLE}"

# What a strategy may count per table, in the order the report and the summary show them.
COUNT_FIELDS: tuple[str, ...] = ("inserted", "updated", "deleted", "unchanged")
