"""grants.py: a shared table read only through a declared cross-store reference gets SELECT, nothing more."""

from __future__ import annotations

import secrets

import psycopg

from cert_loader.catalog import read_catalog
from cert_loader.grants import grant_statements, read_grant_targets, referenced_parents
from cert_loader.references import BoundReference, BoundSide

DDL = ("CREATE TABLE public.school (id int PRIMARY KEY);"
       "CREATE TABLE public.student (id int PRIMARY KEY, district_id text NOT NULL);")


def test_a_declared_parent_without_district_id_gets_select_only(make_database):
    url = make_database(f"gr_{secrets.token_hex(2)}", ddl=DDL)
    with psycopg.connect(url) as conn:
        plain = read_grant_targets(conn, "ids")
        catalog = read_catalog(conn, "ids")
        school = catalog.tables[("public", "school")]
        ref = BoundReference("visit_school", child=BoundSide("hcp1", school, ()), parent=BoundSide("ids", school, ()),
                             casts=())
        assert referenced_parents([ref], "ids") == {("public", "school")}
        assert referenced_parents([ref], "hcp1") == set()
        targets = read_grant_targets(conn, "ids", catalog, referenced_parents([ref], "ids"))
    assert ("public", "school") not in plain.parents  # no FK reads it
    statements = grant_statements("loader", targets)
    assert 'GRANT SELECT ON TABLE "public"."school" TO "loader";' in statements
    assert not any('"public"."school"' in s and "INSERT" in s for s in statements)
