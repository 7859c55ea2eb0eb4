"""Sample districts on disk and loader configurations pointing at the session's stores."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Callable

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from cert_loader.config import LoaderConfig, PgStoreConfig
from cert_loader.inputs import DistrictPaths


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


def rewrite(data_root: Path, district: str, store: str, name: str, fn: Callable[[pa.Table], pa.Table]) -> None:
    """Replace one source file of the district by ``fn`` of its table (to break it on purpose)."""
    path = DistrictPaths(data_root, district).source_file(store, name)
    pq.write_table(fn(pq.read_table(path)), path)


def set_value(table: pa.Table, column: str, row: int, value, type_=None) -> pa.Table:
    """``table`` with one cell changed (the column retyped to ``type_`` if given)."""
    values = table.column(column).to_pylist()
    values[row] = value
    idx = table.schema.get_field_index(column)
    return table.set_column(idx, column, pa.array(values, type_ or table.schema.field(column).type))


def check_rows(report) -> list[tuple]:
    """A report's checks as comparable tuples (two loads that verified the same give equal lists)."""
    return [(c.store, c.table, c.check, c.passed, c.expected, c.actual, c.detail) for c in report.checks]


def prepared(pg_admin, sample_stores, district: str) -> list[str]:
    """The district's prepared transactions (gids) in the session's stores."""
    names = [u.rsplit("/", 1)[1] for u in sample_stores.values()]
    rows = pg_admin.execute("SELECT gid FROM pg_prepared_xacts WHERE database = ANY(%s) AND gid LIKE %s",
                            (names, f"cert_loader|%|{district}")).fetchall()
    return sorted(gid for (gid,) in rows)


def graph_nodes(graph_config, district: str) -> int:
    """The district's nodes in the graph, all labels."""
    from cert_loader.stores.graph import GraphStore

    with GraphStore(graph_config) as graph:
        return sum(graph.counts(district)["nodes"].values())


def file_rows(tables: dict[str, dict[str, int]], data_root: Path, district: str) -> dict[str, dict[str, int]]:
    """Each table's rows in the district's source files (0 for a table the district has no file of)."""
    paths = DistrictPaths(data_root, district)
    out: dict[str, dict[str, int]] = {}
    for store, names in tables.items():
        out[store] = {}
        for qual in names:
            files = [paths.source_file(store, c) for c in (qual, qual.split(".", 1)[1])]
            found = [f for f in files if f.is_file()]
            out[store][qual] = pq.read_metadata(found[0]).num_rows if found else 0
    return out
