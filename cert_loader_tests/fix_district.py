"""Sample districts on disk and loader configurations pointing at the session's stores."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Callable

import psycopg
import pytest
from psycopg import sql

from cert_loader.config import LoaderConfig, PgStoreConfig


def new_district() -> str:
    return f"d-{secrets.token_hex(4)}"


@pytest.fixture
def data_root(tmp_path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def make_district(data_root) -> Callable[..., str]:
    from cert_loader.sample import generate_district

    def make(district: str | None = None, **kwargs) -> str:
        district = district or new_district()
        generate_district(data_root, district, **kwargs)
        return district

    return make


@pytest.fixture
def pg_config(data_root, sample_stores) -> Callable[..., LoaderConfig]:
    """A LoaderConfig over the sample stores (no graph), optionally for a subset of stores."""

    def make(stores=None, root: Path | None = None) -> LoaderConfig:
        names = stores or list(sample_stores)
        return LoaderConfig(
            data_root=root or data_root,
            pg={n: PgStoreConfig(n, sample_stores[n]) for n in names},
        )

    return make


def district_rows(url: str, district: str) -> dict[str, int]:
    """Rows of the district per table (tables with a district_id column), read straight from the catalog."""
    out = {}
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'district_id' "
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'cert_loader')"
        ).fetchall()
        for schema, name in tables:
            out[f"{schema}.{name}"] = conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE district_id = %s").format(sql.Identifier(schema, name)),
                (district,),
            ).fetchone()[0]
    return out


def store_snapshot(urls: dict[str, str], district: str) -> dict[str, dict[str, int]]:
    return {store: district_rows(url, district) for store, url in urls.items()}
