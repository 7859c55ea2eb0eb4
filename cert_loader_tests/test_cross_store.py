"""Cross-store references (references.py, verify/cross_store.py) against the real PostgreSQL: declarations, orphans, MATCH SIMPLE, shared parents."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg import sql

from cert_loader.catalog import read_catalog
from cert_loader.config import PgStoreConfig
from cert_loader.errors import InputError, LoadLockedError, StoreError
from cert_loader.references import (
    REFERENCES_FILE, bind_references, parse_references, read_references, references_path, relevant_references,
)
from cert_loader.stores.postgres import PgStore
from cert_loader.verify.cross_store import check_reference, committed_stores, failed_message, verify_references
from cert_loader_tests.fix_cli import run_cli
from cert_loader_tests.fix_district import new_district

# The child store's studentusi is bigint, the parent's int: one type family (references.TYPE_FAMILIES).
PARENT_DDL = """
CREATE SCHEMA edfi;
CREATE TABLE edfi.student (district_id text NOT NULL, studentusi int NOT NULL, PRIMARY KEY (district_id, studentusi));
CREATE TABLE edfi.student_year (district_id text NOT NULL, studentusi int NOT NULL, school_year smallint NOT NULL,
  PRIMARY KEY (district_id, studentusi, school_year));
CREATE TABLE language (code varchar(8) PRIMARY KEY, label text NOT NULL);
CREATE TABLE flags (district_id text NOT NULL, code char(3) NOT NULL, amount numeric(6,2), at timestamp(3));
DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET search_path = public, edfi', current_database()); END $$;
"""
CHILD_DDL = """
CREATE SCHEMA edfi;
CREATE TABLE edfi.ssa (district_id text NOT NULL, ssa_id bigint NOT NULL, studentusi bigint, school_year int,
  language text, code char(4), amount numeric(10,3), at timestamp(6), PRIMARY KEY (district_id, ssa_id));
CREATE TABLE lookup (code text);
"""

SSA_STUDENT = {"name": "ssa_student",
               "child": {"store": "hcp1", "table": "edfi.ssa", "columns": ["studentusi"]},
               "parent": {"store": "ids", "table": "edfi.student", "columns": ["studentusi"]}}


@pytest.fixture(scope="module")
def xref_urls(make_database) -> dict[str, str]:
    return {"ids": make_database("xref_ids", ddl=PARENT_DDL), "hcp1": make_database("xref_hcp1", ddl=CHILD_DDL)}


@pytest.fixture
def catalogs(xref_urls):
    out = {}
    for name, url in xref_urls.items():
        with psycopg.connect(url, autocommit=True) as conn:
            out[name] = read_catalog(conn, name)
    return out


@pytest.fixture
def open_stores(xref_urls):
    """One open transaction per store (as a load holds them), rolled back at the end of the test."""
    stores = {}
    for name, url in xref_urls.items():
        store = PgStore(PgStoreConfig(name, url))
        store.connect()
        stores[name] = store
    yield stores
    for store in stores.values():
        store.close()


def bound(catalogs, *decls, in_load=None):
    refs, problems = parse_references(list(decls), references_path("/root"))
    assert not problems, problems
    binding = bind_references(refs, catalogs, in_load=in_load)
    assert not binding.problems, [str(p) for p in binding.problems]
    return binding.references


def insert(store: PgStore, table: str, *rows: dict) -> None:
    for row in rows:
        store.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(*table.split(".")), sql.SQL(", ").join(map(sql.Identifier, row)),
            sql.SQL(", ").join([sql.Placeholder()] * len(row))), list(row.values()))


def commit_rows(url: str, table: str, *rows: dict) -> None:
    store = PgStore(PgStoreConfig("x", url))
    store.connect()
    try:
        insert(store, table, *rows)
        store.conn.commit()
    finally:
        store.close()


def ssa(district, ssa_id, studentusi, **extra) -> dict:
    return {"district_id": district, "ssa_id": ssa_id, "studentusi": studentusi, **extra}


# --- the file's shape -----------------------------------------------------------------------------------


def test_absent_file_means_no_references(tmp_path):
    assert read_references(references_path(tmp_path)) == ([], [])


def test_a_declaration_is_read(tmp_path):
    path = references_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps([SSA_STUDENT]))
    refs, problems = read_references(path)
    assert not problems
    assert refs[0].name == "ssa_student" and refs[0].child.columns == ("studentusi",) and refs[0].entry == 1


@pytest.mark.parametrize("data, expected", [
    ({"ssa_student": SSA_STUDENT}, "must hold a JSON list of references, found an object"),
    (["x"], "entry 1 must be an object with name, child and parent, found a string"),
    ([{**SSA_STUDENT, "name": ""}], "entry 1: name must be a non-empty string"),
    ([{**SSA_STUDENT, "parent": None}], 'entry 1 ("ssa_student"): parent must be an object'),
    ([{**SSA_STUDENT, "child": {**SSA_STUDENT["child"], "columns": "studentusi"}}],
     'entry 1 ("ssa_student"): child.columns must be a non-empty list of column names, found "studentusi"'),
    ([{**SSA_STUDENT, "child": {**SSA_STUDENT["child"], "columns": []}}], "child.columns must be a non-empty list"),
    ([{**SSA_STUDENT, "child": {**SSA_STUDENT["child"], "store": 3}}], "child.store must be a non-empty string, found 3"),
    ([{**SSA_STUDENT, "parent": {**SSA_STUDENT["parent"], "colums": ["x"]}}], "parent: unknown field 'colums'"),
    ([{**SSA_STUDENT, "parent": {**SSA_STUDENT["parent"], "columns": ["a", "a"]}}], "parent.columns lists a more than once"),
    ([{**SSA_STUDENT, "kind": "fk"}], "unknown field 'kind'"),
    ([SSA_STUDENT, SSA_STUDENT], 'entry 2 ("ssa_student"): name \'ssa_student\' is already used by entry 1'),
])
def test_a_malformed_file_names_file_entry_and_field(tmp_path, data, expected):
    path = references_path(tmp_path)
    refs, problems = parse_references(data, path)
    assert problems and all(isinstance(p, InputError) for p in problems)
    assert expected in str(problems[0]) and str(path) in str(problems[0]), str(problems[0])


def test_unreadable_json_is_one_problem(tmp_path):
    path = references_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("[{")
    refs, problems = read_references(path)
    assert refs == [] and "is not readable JSON" in str(problems[0]) and REFERENCES_FILE in str(problems[0])


def test_every_shape_problem_is_listed_and_good_entries_kept(tmp_path):
    bad = {"name": "bad", "child": {"store": "hcp1"}, "parent": []}
    refs, problems = parse_references([bad, SSA_STUDENT], references_path(tmp_path))
    assert [r.name for r in refs] == ["ssa_student"]
    assert len(problems) == 3  # child.table, child.columns, parent: one per field
    assert all('entry 1 ("bad")' in str(p) for p in problems)


# --- declarations against the live catalogs ---------------------------------------------------------------


def test_a_declaration_binds_through_search_path_and_type_families(catalogs):
    ref, = bound(catalogs, SSA_STUDENT)
    assert ref.child.table.qualname == "edfi.ssa" and ref.parent.table.qualname == "edfi.student"
    assert ref.casts == ("bigint",)  # int8 child, int4 parent: compared as bigint
    unqualified = {**SSA_STUDENT, "parent": {**SSA_STUDENT["parent"], "table": "student"}}
    assert bound(catalogs, unqualified)[0].parent.table.qualname == "edfi.student"  # search_path public, edfi
    text_varchar = {"name": "lang", "child": {"store": "hcp1", "table": "edfi.ssa", "columns": ["language"]},
                    "parent": {"store": "ids", "table": "language", "columns": ["code"]}}
    assert bound(catalogs, text_varchar)[0].casts == ("text",)
    numeric = {"name": "amount", "child": {"store": "hcp1", "table": "edfi.ssa", "columns": ["amount"]},
               "parent": {"store": "ids", "table": "flags", "columns": ["amount"]}}
    assert bound(catalogs, numeric)[0].casts == ("numeric",)


def _problems(catalogs, decl, in_load=None):
    refs, shape = parse_references([decl], references_path("/root"))
    assert not shape
    binding = bind_references(refs, catalogs, in_load=in_load)
    assert not binding.references
    return [str(p) for p in binding.problems], binding


def _with(side: str, **changes) -> dict:
    return {**SSA_STUDENT, side: {**SSA_STUDENT[side], **changes}}


@pytest.mark.parametrize("decl, expected", [
    (_with("parent", store="sp"), "parent store 'sp' is not a PostgreSQL store"),
    (_with("child", store="hcp9"), "child store 'hcp9' is not a PostgreSQL store"),
    (_with("parent", store="hcp1"), "child and parent are both in store hcp1"),
    (_with("parent", table="edfi.pupil"), 'parent table: table "edfi.pupil" is not in database'),
    (_with("child", table="ssa_missing"), 'child table: table "ssa_missing" is not in database'),
    (_with("child", columns=["student_usi"]), 'child column "student_usi" is not in the table'),
    (_with("parent", columns=["studentusi", "district_id"]), "child names 1 column(s) (studentusi), parent 2"),
    (_with("child", columns=["language"]),
     'child column "language" is text but parent column edfi.student."studentusi" is integer'),
    (_with("child", table="lookup", columns=["code"]), 'child table has no "district_id" column'),
])
def test_a_bad_declaration_is_refused(catalogs, decl, expected):
    problems, _ = _problems(catalogs, decl)
    assert problems and any(expected in p for p in problems), problems
    assert all(REFERENCES_FILE in p or "PostgreSQL store" in p or "FOREIGN KEY" in p or "CERT table" in p
               or "type family" in p for p in problems), problems  # each says what to do


@pytest.mark.parametrize("child_col, parent_table, parent_col, expected", [
    ("code", "flags", "code", "character(4) but parent column public.flags.\"code\" is character(3)"),  # char(n) only with itself
    ("at", "flags", "at", "timestamp(6) without time zone but parent column public.flags.\"at\" is timestamp(3)"),
    ("school_year", "flags", "amount", "is integer but parent column public.flags.\"amount\" is numeric(6,2)"),
])
def test_incompatible_types_are_refused(catalogs, child_col, parent_table, parent_col, expected):
    decl = {"name": "t", "child": {"store": "hcp1", "table": "edfi.ssa", "columns": [child_col]},
            "parent": {"store": "ids", "table": parent_table, "columns": [parent_col]}}
    problems, _ = _problems(catalogs, decl)
    assert any(expected in p for p in problems), problems


def test_every_catalog_problem_of_a_declaration_is_listed(catalogs):
    decl = {"name": "t", "child": {"store": "hcp1", "table": "edfi.ssa", "columns": ["nope", "studentusi"]},
            "parent": {"store": "ids", "table": "edfi.nothing", "columns": ["studentusi"]}}
    problems, _ = _problems(catalogs, decl)
    assert len(problems) == 3, problems  # unknown column, unknown table, column count


def test_a_store_outside_the_load(catalogs):
    only_child = {"hcp1": catalogs["hcp1"]}
    problems, _ = _problems(only_child, SSA_STUDENT)
    assert "store ids is not configured for this load" in problems[0] and "CERT_IDS_URL" in problems[0]
    problems, binding = _problems({}, SSA_STUDENT)
    assert problems == [] and "not in this load; not checked" in binding.warnings[0]
    problems, binding = _problems(catalogs, SSA_STUDENT, in_load=["hcp2"])  # both ends readable, neither loaded
    assert problems == [] and "not in this load; not checked" in binding.warnings[0]


def test_relevant_references_are_those_whose_tables_the_load_touches(catalogs):
    ref, = bound(catalogs, SSA_STUDENT)
    assert relevant_references([ref], {"hcp1": [("edfi", "ssa")]}) == [ref]
    assert relevant_references([ref], {"ids": [("edfi", "student")]}) == [ref]  # the parent: merge, unload
    assert relevant_references([ref], {"ids": [("public", "language")], "hcp1": []}) == []


# --- the check across open transactions -------------------------------------------------------------------


def test_an_orphan_is_found_with_examples(catalogs, open_stores):
    ref, = bound(catalogs, SSA_STUDENT)
    d = new_district()
    insert(open_stores["ids"], "edfi.student", {"district_id": d, "studentusi": 1}, {"district_id": d, "studentusi": 2})
    insert(open_stores["hcp1"], "edfi.ssa", ssa(d, 1, 1), ssa(d, 2, 2), ssa(d, 3, 7), ssa(d, 4, 7), ssa(d, 5, 9))
    result, = verify_references([ref], d, open_stores, run_tag="t1")
    assert not result.passed
    c = result.check
    assert (c.store, c.table, c.check, c.expected, c.actual) == ("hcp1", "edfi.ssa", "cross_store:ssa_student", 0, 3)
    assert (result.child_rows, result.child_keys, result.orphan_rows, result.orphan_keys) == (5, 4, 3, 2)
    assert c.examples == [{"studentusi": "7"}, {"studentusi": "9"}]
    assert c.detail.startswith(f"3 row(s) of hcp1.edfi.ssa (studentusi) reference a row of district {d} of "
                               "ids.edfi.student (studentusi) that does not exist (2 distinct key(s)), e.g. {'studentusi': '7'}")
    assert "ssa_student" in failed_message([result])
    report = result.as_dict()
    assert report["status"] == "FAILED" and report["orphans"] == 3 and report["checked_rows"] == 5
    assert report["parent"]["read"] == "transaction"


def test_a_parent_of_another_district_does_not_count(catalogs, open_stores):
    ref, = bound(catalogs, SSA_STUDENT)
    d, other = new_district(), new_district()
    insert(open_stores["ids"], "edfi.student", {"district_id": other, "studentusi": 5})
    insert(open_stores["hcp1"], "edfi.ssa", ssa(d, 1, 5))
    result, = verify_references([ref], d, open_stores)
    assert result.orphan_rows == 1


def test_a_parent_from_an_earlier_load_counts(catalogs, xref_urls, open_stores):
    ref, = bound(catalogs, SSA_STUDENT)
    d = new_district()
    commit_rows(xref_urls["ids"], "edfi.student", {"district_id": d, "studentusi": 40})  # committed earlier
    insert(open_stores["ids"], "edfi.student", {"district_id": d, "studentusi": 41})  # this load's, uncommitted
    insert(open_stores["hcp1"], "edfi.ssa", ssa(d, 1, 40), ssa(d, 2, 41))
    result, = verify_references([ref], d, open_stores)
    assert result.passed and result.child_rows == 2, result.check.detail
    # The parent store outside the load: read as committed (the uncommitted 41 is not there).
    with committed_stores({"ids": PgStoreConfig("ids", xref_urls["ids"])}, d) as readers:
        result, = verify_references([ref], d, {"hcp1": open_stores["hcp1"]}, committed=readers)
    assert result.as_dict()["parent"]["read"] == "committed"
    assert (result.orphan_rows, result.check.examples) == (1, [{"studentusi": "41"}])


def test_null_child_columns_are_skipped(catalogs, open_stores):
    """MATCH SIMPLE: a row with any column NULL references nothing (composite key: one NULL is enough)."""
    composite = {"name": "ssa_year", "child": {"store": "hcp1", "table": "edfi.ssa", "columns": ["studentusi", "school_year"]},
                 "parent": {"store": "ids", "table": "student_year", "columns": ["studentusi", "school_year"]}}
    single, pair = bound(catalogs, SSA_STUDENT, composite)
    assert pair.casts == ("bigint", "bigint")
    d = new_district()
    insert(open_stores["ids"], "edfi.student", {"district_id": d, "studentusi": 1})
    insert(open_stores["ids"], "edfi.student_year", {"district_id": d, "studentusi": 1, "school_year": 2025})
    insert(open_stores["hcp1"], "edfi.ssa", ssa(d, 1, None, school_year=2024), ssa(d, 2, 99, school_year=None),
           ssa(d, 3, 1, school_year=2025), ssa(d, 4, None))
    r_single, r_pair = verify_references([single, pair], d, open_stores)
    assert (r_single.child_rows, r_single.orphan_rows) == (2, 1)  # 99 is checked (and missing), the NULLs not
    assert (r_pair.child_rows, r_pair.passed) == (1, True), r_pair.check.detail
    insert(open_stores["hcp1"], "edfi.ssa", ssa(d, 5, 1, school_year=2024))
    r_pair, = verify_references([pair], d, open_stores)
    assert r_pair.check.examples == [{"studentusi": "1", "school_year": "2024"}]


def test_a_parent_without_district_id_is_shared_reference_data(catalogs, xref_urls, open_stores):
    lang = {"name": "ssa_language", "child": {"store": "hcp1", "table": "edfi.ssa", "columns": ["language"]},
            "parent": {"store": "ids", "table": "language", "columns": ["code"]}}
    ref, = bound(catalogs, lang)
    assert not ref.parent.has_district and "any district" in ref.describe()
    d = new_district()
    code = d[-6:]
    commit_rows(xref_urls["ids"], "language", {"code": code, "label": "x"})
    insert(open_stores["hcp1"], "edfi.ssa", ssa(d, 1, None, language=code), ssa(d, 2, None, language="zz-none"))
    result, = verify_references([ref], d, open_stores)
    assert (result.child_rows, result.orphan_rows, result.check.examples) == (2, 1, [{"language": "zz-none"}])
    assert "(any district)" in result.check.detail


def test_the_check_leaves_nothing_and_the_stores_still_prepare(catalogs, xref_urls, open_stores, pg_admin):
    """The stage is an unlogged table in the loader's schema, dropped after: PREPARE still works (no temp objects)."""
    ref, = bound(catalogs, SSA_STUDENT)
    d = new_district()
    gids = {}
    for name, store in open_stores.items():
        gids[name] = f"cert_loader_test|{d}|{name}"
        store.conn.tpc_begin(gids[name])
    insert(open_stores["ids"], "edfi.student", {"district_id": d, "studentusi": 3})
    insert(open_stores["hcp1"], "edfi.ssa", ssa(d, 1, 3))
    assert verify_references([ref], d, open_stores, run_tag="prep")[0].passed
    try:
        for store in open_stores.values():
            store.conn.tpc_prepare()
    finally:
        for store in open_stores.values():
            store.conn.tpc_rollback()
    with psycopg.connect(xref_urls["ids"], autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'cert_loader' "
                            "AND tablename LIKE 'xref%'").fetchone()[0] == 0


def test_a_failed_copy_aborts_the_check_with_a_store_error(catalogs, open_stores):
    ref, = bound(catalogs, SSA_STUDENT)
    d = new_district()
    open_stores["hcp1"].execute("DROP TABLE edfi.ssa")  # inside the transaction: the child side's COPY fails
    with pytest.raises(StoreError) as info:
        check_reference(ref, d, open_stores["hcp1"], open_stores["ids"])
    assert info.value.store == "hcp1" and info.value.table == "edfi.ssa"


def test_a_committed_reader_refuses_an_unmarked_database_and_a_locked_district(make_database, xref_urls):
    unmarked = make_database("xref_unmarked", mark=False)
    with pytest.raises(StoreError, match="not marked as a CERT store"):
        with committed_stores({"ids": PgStoreConfig("ids", unmarked)}, "d"):
            pass
    d = new_district()
    holder = PgStore(PgStoreConfig("ids", xref_urls["ids"]))
    holder.connect(autocommit=True)
    try:
        holder.lock_district(d)  # another load of the district is running in ids
        with pytest.raises(LoadLockedError):
            with committed_stores({"ids": PgStoreConfig("ids", xref_urls["ids"])}, d):
                pass
    finally:
        holder.close()


# --- the sample schema's own cross-store columns ----------------------------------------------------------

SAMPLE_REFERENCES = [
    {"name": "patient_student", "child": {"store": "hcp1", "table": "patient", "columns": ["student_id"]},
     "parent": {"store": "ids", "table": "edfi.student", "columns": ["student_id"]}},
    {"name": "clinic_school", "child": {"store": "hcp1", "table": "clinic", "columns": ["school_id"]},
     "parent": {"store": "ids", "table": "school", "columns": ["school_id"]}},
    {"name": "referral_student", "child": {"store": "hcp2", "table": "referral", "columns": ["student_id"]},
     "parent": {"store": "ids", "table": "edfi.student", "columns": ["student_id"]}},
    {"name": "assessment_student", "child": {"store": "adb", "table": "student_assessment", "columns": ["student_id"]},
     "parent": {"store": "ids", "table": "edfi.student", "columns": ["student_id"]}},
]


def test_the_sample_district_satisfies_its_references_and_an_orphan_is_caught(sample_stores, pg_config, make_district):
    from cert_loader.engine import LoadOptions, load_district

    d = make_district(students=40)
    report = load_district(pg_config(), d, LoadOptions(strategy="insert", parallel=False))
    assert report.status == "SUCCESS", report.error
    catalogs = {}
    for name, url in sample_stores.items():
        with psycopg.connect(url, autocommit=True) as conn:
            catalogs[name] = read_catalog(conn, name)
    refs = bound(catalogs, *SAMPLE_REFERENCES)
    configs = {n: PgStoreConfig(n, u) for n, u in sample_stores.items()}
    with committed_stores(configs, d) as readers:
        results = verify_references(refs, d, {}, committed=readers)
    assert all(r.passed for r in results), [r.check.detail for r in results]
    assert all(r.child_rows > 0 for r in results)
    # One more patient, of a student ids does not have, in an open hcp1 transaction.
    hcp1 = PgStore(configs["hcp1"])
    hcp1.connect()
    try:
        hcp1.execute("INSERT INTO patient (district_id, patient_id, student_id, clinic_id, primary_language, allergies, "
                     "consent_on_file, registered_on) SELECT district_id, 999999, 42, clinic_id, 'en', '[]', true, "
                     "'2025-01-01' FROM clinic WHERE district_id = %s LIMIT 1", (d,))
        with committed_stores({"ids": configs["ids"]}, d) as readers:
            result, = verify_references(refs[:1], d, {"hcp1": hcp1}, committed=readers)
    finally:
        hcp1.close()
    assert (result.orphan_rows, result.check.examples) == (1, [{"student_id": "42"}])


# --- the pre-flight and engine helpers --------------------------------------------------------------------


def write_references(root, decls) -> None:
    path = references_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(decls))


def test_plan_references_binds_and_opens_a_reader_for_a_store_outside_the_load(tmp_path, catalogs, xref_urls):
    from cert_loader.plan import LoadPlan
    from cert_loader.verify.cross_store import close_readers, plan_references

    write_references(tmp_path, [SSA_STUDENT])
    plan = LoadPlan(new_district(), "insert")
    refs, readers = plan_references(tmp_path, plan, {"hcp1": catalogs["hcp1"]},
                                    {"ids": PgStoreConfig("ids", xref_urls["ids"])}, lock=True)
    try:
        assert not plan.problems and [r.name for r in refs] == ["ssa_student"] and list(readers) == ["ids"]
    finally:
        close_readers(readers)
    plan = LoadPlan(new_district(), "insert")
    refs, readers = plan_references(tmp_path, plan, {"hcp1": catalogs["hcp1"]}, {}, lock=False)
    assert refs == [] and readers == {} and "store ids is not configured for this load" in str(plan.problems[0])
    write_references(tmp_path, [SSA_STUDENT, {"name": "x"}])
    plan = LoadPlan(new_district(), "insert")
    refs, readers = plan_references(tmp_path, plan, catalogs, {}, lock=False)
    assert len(refs) == 1 and len(plan.problems) == 2  # entry 2 lacks child and parent


def test_check_load_attaches_results_and_raises_for_an_orphan(catalogs, open_stores):
    from cert_loader.errors import VerificationError
    from cert_loader.results import StoreResult, TableResult
    from cert_loader.verify.cross_store import attach_results, check_load, raise_for_failures

    ref, = bound(catalogs, SSA_STUDENT)
    d = new_district()
    insert(open_stores["hcp1"], "edfi.ssa", ssa(d, 1, 12345))
    assert check_load([ref], d, {"hcp1": [("public", "lookup")]}, open_stores, None, "t") == []  # not touched
    results = check_load([ref], d, {"hcp1": [("edfi", "ssa")]}, open_stores, None, "t")
    srs = {"hcp1": StoreResult("hcp1", tables=[TableResult("hcp1", "edfi.ssa", 1)])}
    attach_results(results, srs)
    assert srs["hcp1"].tables[0].checks == [results[0].check]
    with pytest.raises(VerificationError) as info:
        raise_for_failures(results, d)
    err = info.value
    assert (err.store, err.table, len(err.checks)) == ("hcp1", "edfi.ssa", 1)
    assert 'cross-store reference "ssa_student" failed: 1 row(s) of hcp1.edfi.ssa' in str(err)


def test_dagster_has_one_check_per_reference_on_the_child_asset(sample_stores, tmp_path):
    from cert_loader.defs.references import bind_from_manifest, dagster_check_name, reference_check_specs
    from cert_loader.defs.translator import build_specs
    from cert_loader.manifest import read_manifest
    from cert_loader_tests.dagster_support import snapshot_to

    manifest = read_manifest(snapshot_to(sample_stores, tmp_path / "cert-schema.json"))
    write_references(tmp_path, SAMPLE_REFERENCES + [_with("child", table="nowhere")])
    refs = bind_from_manifest(manifest, references_path(tmp_path))
    assert [r.name for r in refs] == [r["name"] for r in SAMPLE_REFERENCES]  # the bad one is only logged
    specs = reference_check_specs(build_specs(manifest), refs, None)
    assert {(s.asset_key.to_user_string(), s.name) for s in specs} == {
        ("cert/hcp1/patient", "cross_store__patient_student"), ("cert/hcp1/clinic", "cross_store__clinic_school"),
        ("cert/hcp2/referral", "cross_store__referral_student"),
        ("cert/adb/student_assessment", "cross_store__assessment_student")}
    assert dagster_check_name("row_count") == "row_count"


def test_a_parent_deleted_in_the_load_orphans_committed_child_rows(catalogs, xref_urls, open_stores):
    """Merge or unload of the parent store while the child store is outside the load: the child is read as committed."""
    ref, = bound(catalogs, SSA_STUDENT)
    d = new_district()
    commit_rows(xref_urls["ids"], "edfi.student", {"district_id": d, "studentusi": 60}, {"district_id": d, "studentusi": 61})
    commit_rows(xref_urls["hcp1"], "edfi.ssa", ssa(d, 1, 60), ssa(d, 2, 61), ssa(d, 3, 61))
    open_stores["ids"].execute("DELETE FROM edfi.student WHERE district_id = %s AND studentusi = 61", (d,))
    with committed_stores({"hcp1": PgStoreConfig("hcp1", xref_urls["hcp1"])}, d) as readers:
        result, = verify_references([ref], d, {"ids": open_stores["ids"]}, committed=readers)
    assert (result.orphan_rows, result.orphan_keys, result.check.examples) == (2, 1, [{"studentusi": "61"}])
    assert result.as_dict()["parent"]["read"] == "transaction"


# --- through the engine, the CLI's plan and Dagster --------------------------------------------------------


def _drop_student(data_root, district, student_id) -> None:
    """Remove one student from the ids files (and the ids rows that reference it), as a merge source would."""
    import pyarrow.compute as pc

    from cert_loader_tests.fix_district import rewrite

    for name in ("edfi.student", "edfi.enrollment", "edfi.attendance_event"):
        rewrite(data_root, district, "ids", name, lambda t: t.filter(pc.not_equal(t.column("student_id"), student_id)))


def _first_patient_student(data_root, district) -> int:
    import pyarrow.parquet as pq

    from cert_loader.inputs import DistrictPaths

    return pq.read_table(DistrictPaths(data_root, district).source_file("hcp1", "patient")).column("student_id")[0].as_py()


@pytest.fixture
def sample_with_references(make_district, data_root, sample_stores):
    def make(**kwargs) -> str:
        d = make_district(students=40, **kwargs)
        write_references(data_root, SAMPLE_REFERENCES)
        return d
    return make


def _load(config, district, **kw):
    from cert_loader.engine import LoadOptions, load_district

    return load_district(config, district, LoadOptions(**{"parallel": False, **kw}))


@pytest.mark.usefixtures("no_prepared_left")
def test_a_clean_load_reports_every_reference(sample_with_references, pg_config, data_root):
    d = sample_with_references()
    report = _load(pg_config(), d)
    assert report.status == "SUCCESS", report.error
    section = report.as_dict()["cross_store_verification"]
    assert section["status"] == "PASSED"
    assert [r["name"] for r in section["references"]] == [r["name"] for r in SAMPLE_REFERENCES]
    assert all(r["checked_rows"] > 0 and r["orphans"] == 0 and r["status"] == "PASSED" for r in section["references"])
    assert report.as_dict()["post_load_validation"]["cross_store_verification"] == "PASSED"
    patient = next(t for t in report.stores["hcp1"].tables if t.table == "public.patient")
    assert "cross_store:patient_student" in [c.check for c in patient.checks]


@pytest.mark.usefixtures("no_prepared_left")
def test_an_orphan_refuses_the_load_and_nothing_is_written_anywhere(sample_with_references, pg_config, data_root,
                                                                     sample_stores):
    from cert_loader.report import render_summary
    from cert_loader_tests.fix_district import rewrite, set_value, store_snapshot

    d = sample_with_references()
    rewrite(data_root, d, "hcp1", "patient", lambda t: set_value(t, "student_id", 0, 7))  # no student 7 in ids
    before = store_snapshot(sample_stores, d)
    report = _load(pg_config(), d, parallel=True)
    assert report.status == "FAILED"
    assert store_snapshot(sample_stores, d) == before  # every store: nothing of the district
    assert all(sr.transaction == "ROLLED_BACK" for sr in report.stores.values())
    message = report.error["message"]
    assert 'cross-store reference "patient_student" failed: 1 row(s) of hcp1.public.patient (student_id)' in message
    assert "{'student_id': '7'}" in message and report.error["rolled_back"] is True
    data = report.as_dict()
    failed = next(r for r in data["cross_store_verification"]["references"] if r["name"] == "patient_student")
    assert (failed["status"], failed["orphans"], failed["examples"]) == ("FAILED", 1, [{"student_id": "7"}])
    assert data["post_load_validation"]["cross_store_verification"] == "FAILED"
    assert "cross-store:   FAILED" in render_summary(report)


@pytest.mark.usefixtures("no_prepared_left")
def test_a_bad_declaration_is_refused_before_any_write(sample_with_references, pg_config, data_root, sample_stores):
    from cert_loader_tests.fix_district import store_snapshot

    d = sample_with_references()
    bad = {**SAMPLE_REFERENCES[0], "name": "bad", "child": {**SAMPLE_REFERENCES[0]["child"], "columns": ["student_usi"]}}
    write_references(data_root, SAMPLE_REFERENCES + [bad])
    report = _load(pg_config(), d)
    assert report.status == "FAILED" and report.error["type"] == "CatalogError"
    assert 'child column "student_usi" is not in the table' in report.error["message"]
    assert all(n == 0 for tables in store_snapshot(sample_stores, d).values() for n in tables.values())


@pytest.mark.usefixtures("no_prepared_left")
def test_a_merge_that_would_orphan_another_stores_rows_is_refused(sample_with_references, pg_config, data_root,
                                                                   sample_stores):
    from cert_loader.config import PgStoreConfig as Cfg
    from cert_loader_tests.fix_district import store_snapshot

    d = sample_with_references()
    assert _load(pg_config(), d).status == "SUCCESS"
    loaded = store_snapshot(sample_stores, d)
    student = _first_patient_student(data_root, d)
    _drop_student(data_root, d, student)
    readers = {n: Cfg(n, sample_stores[n]) for n in ("hcp1", "hcp2", "adb")}
    report = _load(pg_config(["ids"]), d, strategy="merge", readers=readers)
    assert report.status == "FAILED"
    message = report.error["message"]
    assert 'cross-store reference "patient_student" failed' in message and f"'student_id': '{student}'" in message
    refs = report.as_dict()["cross_store_verification"]["references"]
    assert {r["name"] for r in refs} == {"patient_student", "referral_student", "assessment_student", "clinic_school"}
    assert all(r["parent"]["read"] == "transaction" for r in refs)
    assert {r["name"]: r["child"]["read"] for r in refs}["patient_student"] == "committed"  # hcp1 is outside the merge
    assert store_snapshot(sample_stores, d) == loaded
    # Without a way to read the other stores, the merge is refused in pre-flight (it could not be checked).
    report = _load(pg_config(["ids"]), d, strategy="merge")
    assert report.status == "FAILED" and "is not configured for this load" in report.error["message"]
    assert store_snapshot(sample_stores, d) == loaded


@pytest.mark.usefixtures("no_prepared_left")
def test_an_unload_of_the_parent_store_alone_is_refused(sample_with_references, pg_config, data_root, sample_stores):
    from cert_loader.config import PgStoreConfig as Cfg
    from cert_loader.engine import unload_district
    from cert_loader.errors import VerificationError
    from cert_loader_tests.fix_district import store_snapshot

    d = sample_with_references()
    assert _load(pg_config(), d).status == "SUCCESS"
    loaded = store_snapshot(sample_stores, d)
    readers = {n: Cfg(n, sample_stores[n]) for n in ("hcp1", "hcp2", "adb")}
    with pytest.raises(VerificationError) as info:
        unload_district(pg_config(["ids"]), d, readers=readers)
    assert 'cross-store reference "patient_student" failed' in str(info.value)
    assert "unload the stores whose rows still reference them too" in str(info.value)
    assert store_snapshot(sample_stores, d) == loaded
    deleted = unload_district(pg_config(), d)  # every store together: nothing is left to point anywhere
    assert sum(deleted["ids"].values()) > 0
    assert all(n == 0 for tables in store_snapshot(sample_stores, d).values() for n in tables.values())


def test_plan_lists_each_reference_and_what_it_checks(sample_with_references, pg_config, data_root, sample_stores):
    from cert_loader.config import PgStoreConfig as Cfg
    from cert_loader.engine import LoadOptions, plan_district
    from cert_loader.plan_view import plan_dict, render_plan

    d = sample_with_references()
    pf = plan_district(pg_config(["ids", "hcp1"]), d,
                       LoadOptions(readers={n: Cfg(n, sample_stores[n]) for n in ("hcp2", "adb")}))
    try:
        text = render_plan(pf)
        data = plan_dict(pf)
    finally:
        pf.close()
    assert "Cross-store references (checked before the commit" in text
    assert "patient_student: hcp1.public.patient (student_id) -> ids.edfi.student (student_id)  [checked]" in text
    assert "reads adb: committed (outside the load)" in text
    refs = {r["name"]: r for r in data["cross_store_references"]}
    assert refs["referral_student"]["checked"] is True  # its parent, ids.edfi.student, is in the load
    assert "of the same district" in refs["patient_student"]["checks"] and not data["would_refuse"]
    write_references(data_root, [{**SAMPLE_REFERENCES[0], "parent": {**SAMPLE_REFERENCES[0]["parent"], "table": "edfi.pupil"}}])
    pf = plan_district(pg_config(["ids", "hcp1"]), d)
    try:
        assert 'parent table: table "edfi.pupil" is not in database' in render_plan(pf)
    finally:
        pf.close()


@pytest.mark.usefixtures("no_prepared_left")
def test_dagster_yields_the_reference_check_after_the_commit_and_fails_an_orphan(
        sample_with_references, sample_stores, data_root, tmp_path):
    import dagster as dg

    from cert_loader.defs.assets import build_cert_asset
    from cert_loader.defs.references import bind_from_manifest
    from cert_loader.defs.translator import build_specs
    from cert_loader.manifest import read_manifest
    from cert_loader_tests.dagster_support import check_evaluations, instance_with, pg_resources, snapshot_to
    from cert_loader_tests.fix_district import rewrite, set_value, store_snapshot

    manifest_file = snapshot_to(sample_stores, tmp_path / "cert-schema.json")
    manifest = read_manifest(manifest_file)
    cert = build_specs(manifest)
    d = sample_with_references()
    cert.references = bind_from_manifest(manifest, references_path(data_root))
    asset = build_cert_asset(cert, manifest_file)
    patient = dg.AssetKey(["cert", "hcp1", "patient"])

    def run(selection=None, strategy="insert"):
        return dg.materialize([asset], partition_key=d, instance=instance_with([d]), selection=selection,
                              resources=pg_resources(sample_stores, data_root), raise_on_error=False,
                              run_config={"ops": {"cert_district_load": {"config": {"strategy": strategy}}}})

    # Only hcp1's patient (and its clinic parent) selected: ids is read as committed, and has no students yet.
    result = run(selection=[patient, dg.AssetKey(["cert", "hcp1", "clinic"])])
    assert not result.success
    failed = {(e.asset_key, e.check_name): e for e in check_evaluations(result)}
    assert not failed[(patient, "cross_store__patient_student")].passed
    assert all(n == 0 for tables in store_snapshot(sample_stores, d).values() for n in tables.values())

    result = run()
    assert result.success
    checks = {(e.asset_key, e.check_name): e for e in check_evaluations(result)}
    ev = checks[(patient, "cross_store__patient_student")]
    assert ev.passed and ev.partition == d
    assert checks[(dg.AssetKey(["cert", "adb", "student_assessment"]), "cross_store__assessment_student")].passed

    rewrite(data_root, d, "hcp1", "patient", lambda t: set_value(t, "student_id", 0, 7))
    loaded = store_snapshot(sample_stores, d)
    result = run(strategy="replace")
    assert not result.success
    ev, = [e for e in check_evaluations(result) if not e.passed]
    assert (ev.asset_key, ev.check_name) == (patient, "cross_store__patient_student")
    assert ev.metadata["examples"].value == [{"student_id": "7"}]
    assert store_snapshot(sample_stores, d) == loaded


@pytest.mark.usefixtures("no_prepared_left")
def test_the_cli_reads_stores_outside_stores_from_their_urls(sample_with_references, sample_stores, data_root, pg_config):
    import os

    from cert_loader_tests.fix_district import store_snapshot

    def cli(*args):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CERT_DATA_ROOT": str(data_root),
               **{f"CERT_{s.upper()}_URL": u for s, u in sample_stores.items()}}
        return run_cli(*args, env=env)

    d = sample_with_references()
    plan = cli("plan", d, "--stores", "ids")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "patient_student: hcp1.public.patient (student_id) -> ids.edfi.student (student_id)  [checked]" in plan.stdout
    assert "reads hcp1: committed (outside the load)" in plan.stdout
    assert _load(pg_config(), d).status == "SUCCESS"
    loaded = store_snapshot(sample_stores, d)
    unload = cli("unload", d, "--stores", "ids")
    assert unload.returncode == 2 and 'cross-store reference "patient_student" failed' in unload.stderr, unload.stderr
    assert store_snapshot(sample_stores, d) == loaded
