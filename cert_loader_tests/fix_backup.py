"""Helpers of the backup and restore tests: what a district holds in every store, a second extract, a five-store config."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from cert_loader.config import LoaderConfig
from cert_loader.inputs import DistrictPaths
from cert_loader.stores.graph import GraphStore


def contents(url: str, district: str) -> dict[str, list[str]]:
    """Every district row of every table, as the database renders it (order-independent)."""
    out = {}
    with psycopg.connect(url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'district_id' WHERE c.relkind = 'r' "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'cert_loader')").fetchall()
        for schema, name in tables:
            rows = conn.execute(sql.SQL("SELECT t::text FROM {} t WHERE district_id = %s").format(
                sql.Identifier(schema, name)), (district,)).fetchall()
            out[f"{schema}.{name}"] = sorted(r[0] for r in rows)
    return out


def graph_contents(graph_config, district: str) -> dict[str, list]:
    with GraphStore(graph_config) as store:
        records, _, _ = store._driver.execute_query(
            "MATCH (n {district_id: $d}) RETURN labels(n) AS l, properties(n) AS p", {"d": district},
            database_=graph_config.database)
        nodes = sorted(json.dumps([r["l"], r["p"]], sort_keys=True) for r in records)
        records, _, _ = store._driver.execute_query(
            "MATCH (a {district_id: $d})-[x]->(b) RETURN type(x) AS t, a.id AS s, b.id AS e, properties(x) AS p",
            {"d": district}, database_=graph_config.database)
        rels = sorted(json.dumps([r["t"], r["s"], r["e"], r["p"]], sort_keys=True) for r in records)
    return {"nodes": nodes, "relationships": rels}


def second_extract(data_root: Path, district: str) -> None:
    """v2 of the district: rows gone (merge deletes them), changed values (updates), changed graph properties."""
    def change(store: str, name: str, fn) -> None:
        path = DistrictPaths(data_root, district).source_file(store, name)
        pq.write_table(fn(pq.read_table(path)), path)

    def scores(t: pa.Table) -> pa.Table:
        t = t.slice(3)
        return t.set_column(t.schema.get_field_index("raw_score"), "raw_score",
                            pc.add(t.column("raw_score"), 1).cast(t.schema.field("raw_score").type))

    def props(extra: dict):
        def fn(t: pa.Table) -> pa.Table:
            changed = [json.dumps({**json.loads(p or "{}"), **extra}) for p in t.column("properties").to_pylist()]
            return t.set_column(t.schema.get_field_index("properties"), "properties", pa.array(changed, pa.string()))
        return fn

    change("adb", "objective_score", scores)
    change("sp", "nodes", props({"v2": 1}))
    change("sp", "relationships", lambda t: props({"w2": 2.0})(t.slice(5)))


def full_config(pg_config, graph_config, root=None) -> LoaderConfig:
    base = pg_config(root=root)
    return LoaderConfig(base.data_root, base.pg, graph_config)
