"""The sample CERT schemas ship as package SQL files so demos and tests can create the four stores' tables."""

from __future__ import annotations

from importlib import resources

import psycopg

SAMPLE_STORES: tuple[str, ...] = ("ids", "hcp1", "hcp2", "adb")


def load_ddl(store: str) -> str:
    """The DDL text of ``store``'s sample CERT schema (``cert_loader/sample/sql/<store>.sql``)."""
    if store not in SAMPLE_STORES:
        raise ValueError(f"unknown sample store {store!r}; expected one of {SAMPLE_STORES}")
    return resources.files("cert_loader.sample").joinpath("sql", f"{store}.sql").read_text(encoding="utf-8")


def apply_schema(conninfo: str, store: str) -> None:
    """Create ``store``'s sample tables in the (empty) database at ``conninfo``."""
    ddl = load_ddl(store)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(ddl)
