"""verify_content (verify/content.py) against the real PostgreSQL: equal when every value is stored unchanged, caught when one is not.

Each case writes a parquet file, loads it with the product's own strategy (binary COPY through the
converter) inside an open transaction, changes what it needs (a trigger, a session time zone), runs
the check inside that transaction and rolls back.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from cert_loader.catalog import read_catalog
from cert_loader.config import PgStoreConfig
from cert_loader.inputs import DistrictPaths
from cert_loader.plan import LoadPlan, plan_store
from cert_loader.results import TableResult
from cert_loader.store_context import StoreContext
from cert_loader.stores.postgres import PgStore
from cert_loader.strategies import get_strategy
from cert_loader.verify import canonical
from cert_loader.verify.content import ContentCheck, verify_content

SCALES = range(11)

DDL = f"""
CREATE TYPE mood AS ENUM ('calm', 'ok', 'tense');
CREATE TABLE everything (
  district_id text NOT NULL, id int4 NOT NULL,
  i2 int2, i8 int8, f4 float4, f8 float8,
  {", ".join(f"n{s} numeric(20,{s})" for s in SCALES)},
  nu numeric, b bool, t text, vc varchar(20), ch char(6), e mood, j json, jb jsonb, u uuid, bi bytea,
  d date, ts timestamp, tstz timestamptz, tm time, iv interval,
  loaded_at timestamptz DEFAULT now(), twice int8 GENERATED ALWAYS AS (i2::int8 * 2) STORED,
  PRIMARY KEY (district_id, id));
CREATE TABLE converted (district_id text NOT NULL, id int4 PRIMARY KEY, small int2, big int8, f4 float4,
  n2 numeric(10,2), nu numeric, u uuid, d date, tstz timestamptz, tm time, t text);
CREATE TABLE keyless (district_id text NOT NULL, a int4, t text);
CREATE TABLE odd (district_id text NOT NULL, id int4 PRIMARY KEY, x xml, t text);
CREATE TABLE plain (district_id text NOT NULL, id int4 PRIMARY KEY, t text, n numeric(8,3));
CREATE TABLE ident (id int4 GENERATED ALWAYS AS IDENTITY PRIMARY KEY, district_id text NOT NULL, t text,
  naive timestamptz);
"""


@pytest.fixture(scope="module")
def content_url(make_database):
    return make_database("content", ddl=DDL)


@pytest.fixture
def load(content_url, tmp_path):
    """load(table, arrow_table, before=[sql], after=[sql], strategy=…, timezone=…) -> ContentCheck, in one rolled-back transaction."""
    opened: list[PgStore] = []

    def run(table: str, data: pa.Table, *, before: list[str] = (), after: list[str] = (), strategy: str = "insert",
            timezone: str | None = None, district: str | None = None) -> ContentCheck:
        _close(opened)  # one load at a time: a trigger's DDL would wait for the previous load's locks
        district = district or f"d-{secrets.token_hex(3)}"
        if "district_id" not in data.column_names and not run.fill:
            data = data.append_column("district_id", pa.array([district] * data.num_rows, pa.string()))
        root = tmp_path / district
        paths = DistrictPaths(root, district)
        paths.store_dir("ids").mkdir(parents=True)
        pq.write_table(data, paths.source_file("ids", table))
        pg = PgStore(PgStoreConfig("ids", content_url))
        opened.append(pg)
        pg.connect()
        if timezone:
            pg.execute(sql.SQL("SET TimeZone = {}").format(sql.Literal(timezone)))
        for statement in before:
            pg.execute(statement.replace("{district}", district))
        catalog = read_catalog(pg.conn, "ids")
        plan = LoadPlan(district, strategy)
        sp = plan_store("ids", catalog, None, paths, plan)
        assert not plan.problems, plan.problems
        tp = sp.tables[0]
        ctx = StoreContext(pg, sp, district, secrets.token_hex(3))
        chosen = get_strategy(strategy)
        results = {tp.table.key_id: TableResult("ids", tp.table.qualname, tp.rows)}
        chosen.before(ctx, [tp], results)
        chosen.load_table(ctx, tp, results[tp.table.key_id])
        chosen.after(ctx, [tp], results)
        for statement in after:
            pg.execute(statement.replace("{district}", district))
        out = verify_content(ctx, chosen, tp)
        run.ctx, run.district = ctx, district
        if timezone:  # the check puts the session back as it found it
            assert pg.scalar("SELECT current_setting('TimeZone')") == timezone
        return out

    run.fill = False
    yield run
    _close(opened)


def _close(opened: list[PgStore]) -> None:
    while opened:
        pg = opened.pop()
        if pg.conn is not None:
            pg.conn.rollback()
        pg.close()


def _trigger(table: str, body: str) -> list[str]:
    """A BEFORE INSERT trigger on ``table`` running ``body`` (plpgsql, NEW in scope), created in the transaction."""
    fn = f"tg_{secrets.token_hex(3)}"
    return [
        f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NEW; END $$",
        f"CREATE TRIGGER {fn} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {fn}()",
    ]


# --- the table of every type ---------------------------------------------------------------------------

def _dec(values: list, scale: int, precision: int = 20) -> pa.Array:
    return pa.array([None if v is None else Decimal(v) for v in values], pa.decimal128(precision, scale))


def everything_rows() -> pa.Table:
    """Five rows of edge values and one of NULLs in every nullable column."""
    utc = dt.UTC
    n = 6
    cols: dict[str, pa.Array] = {
        "id": pa.array(range(1, n + 1), pa.int32()),
        "i2": pa.array([-32768, 32767, 0, 1, -1, None], pa.int16()),
        "i8": pa.array([-(2**63), 2**63 - 1, 0, 42, -7, None], pa.int64()),
        "f4": pa.array([-0.0, float("nan"), float("inf"), 1e-38, 3.4028234663852886e38, None], pa.float32()),
        "f8": pa.array([-0.0, float("nan"), float("-inf"), 1e-300, 5e-324, None], pa.float64()),
    }
    for s in SCALES:
        tiny = f"{Decimal(1).scaleb(-s):f}"
        cols[f"n{s}"] = _dec([tiny, f"-{tiny}", "0", "123456789", "-98765.4" if s else "-98765", None], min(s, 10))
    cols |= {
        "nu": _dec(["1.5000000000000000", "0", "-0.0000000000000001", "12345678901234567890.5", "100", None], 16, 38),
        "b": pa.array([True, False, True, False, True, None]),
        "t": pa.array(["", "plain", "emoji 😀👩‍👩‍👧 family", "e\u0301 combining, ñ vs n\u0303", "tab\tnew\nline \\ ' \" ,:", None]),
        "vc": pa.array(["a", "ünï", "  lead", "trail  ", "x" * 20, None]),
        "ch": pa.array(["ab", "ab    ", "", "abcdef", "日本", None]),
        "e": pa.array(["calm", "ok", "tense", "ok", "calm", None]),
        "j": pa.array(['{"b": 1,  "a": [1, 2.50]}', '[]', '"s"', '{"a":1,"a":2}', 'null', None]),
        "jb": pa.array(['{"bb": 1, "a": 2, "é": [1.0, 1e2, -0, 1E-2, 12.345e1], "ab": {}}',
                        '{"a": 1, "a": 2}', '["\\u00e9\\n\\"\\\\ \\u0001 /", true, false, null]',
                        '3.14000', '"😀"', None]),
        "u": pa.array([str(uuid.UUID(int=0)), "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12}",
                       "a0eebc999c0b4ef8bb6d6bb9bd380a13", str(uuid.uuid4()), None]),
        "bi": pa.array([b"", b"\x00\xff,:", b"\\x00", "é".encode(), bytes(range(256)), None]),
        "d": pa.array([dt.date(1, 1, 1), dt.date(1970, 1, 1), dt.date(1969, 12, 31), dt.date(2000, 2, 29),
                       dt.date(9999, 12, 31), None], pa.date32()),
        "ts": pa.array([dt.datetime(1, 1, 1), dt.datetime(1970, 1, 1), dt.datetime(1999, 12, 31, 23, 59, 59, 999999),
                        dt.datetime(2024, 3, 31, 2, 30), dt.datetime(9999, 12, 31, 23, 59, 59), None], pa.timestamp("us")),
        "tstz": pa.array([dt.datetime(1, 1, 1, tzinfo=utc), dt.datetime(1970, 1, 1, tzinfo=utc),
                          dt.datetime(2024, 3, 31, 1, 30, tzinfo=utc), dt.datetime(2024, 10, 27, 0, 59, 59, 1, tzinfo=utc),
                          dt.datetime(2262, 4, 11, tzinfo=utc), None], pa.timestamp("us", tz="UTC")),
        "tm": pa.array([dt.time(0), dt.time(23, 59, 59, 999999), dt.time(12, 0, 0, 1), dt.time(1), dt.time(2), None],
                       pa.time64("us")),
        "iv": pa.array([0, 1, -1, 86_400_000_000, 10**15, None], pa.duration("us")),
    }
    return pa.table(cols)


def test_a_clean_load_of_every_type_is_equal(load):
    check = load("everything", everything_rows())
    assert check.result.passed, check.result.detail
    assert check.result.check == "content"
    assert check.result.expected == check.result.actual == 6
    assert set(check.outside) == {"loaded_at", "twice"}
    assert "generated" in check.outside["twice"] and "not in the file" in check.outside["loaded_at"]
    assert "loaded_at" in check.result.detail and "twice" in check.result.detail  # said in the result, not silent
    assert {"f4", "f8", "nu", "jb", "ch", "tstz", "iv"} <= set(check.compared)


def test_a_non_utc_session_time_zone_changes_nothing(load):
    check = load("everything", everything_rows(), timezone="America/New_York")
    assert check.result.passed, check.result.detail


# One changed value per type: (column, plpgsql assignment for the row with id 2 or the NULL row 6).
CHANGES = [
    ("i2", "IF NEW.id = 2 THEN NEW.i2 := NEW.i2 - 1; END IF;"),
    ("i8", "IF NEW.id = 2 THEN NEW.i8 := NEW.i8 - 1; END IF;"),
    ("f8", "IF NEW.id = 1 THEN NEW.f8 := NEW.f8 + 0; END IF;"),  # -0.0 becomes 0.0
    ("f4", "IF NEW.id = 4 THEN NEW.f4 := 1.1e-38; END IF;"),
    ("f8", "IF NEW.id = 4 THEN NEW.f8 := 1.0000000000000002e-300; END IF;"),
    ("n10", "IF NEW.id = 1 THEN NEW.n10 := NEW.n10 * 2; END IF;"),
    ("n0", "IF NEW.id = 4 THEN NEW.n0 := NEW.n0 + 1; END IF;"),
    ("nu", "IF NEW.id = 4 THEN NEW.nu := NEW.nu + 0.0000000000000001; END IF;"),
    ("b", "IF NEW.id = 2 THEN NEW.b := NOT NEW.b; END IF;"),
    ("t", "IF NEW.id = 4 THEN NEW.t := normalize(NEW.t, NFC); END IF;"),  # same glyphs, other code points
    ("t", "IF NEW.id = 6 THEN NEW.t := ''; END IF;"),  # NULL became the empty string
    ("vc", "IF NEW.id = 4 THEN NEW.vc := rtrim(NEW.vc); END IF;"),
    ("ch", "IF NEW.id = 2 THEN NEW.ch := 'ac'; END IF;"),
    ("e", "IF NEW.id = 2 THEN NEW.e := 'calm'; END IF;"),
    ("j", "IF NEW.id = 1 THEN NEW.j := (NEW.j::jsonb)::json; END IF;"),  # json keeps its text: normalising is a change
    ("jb", "IF NEW.id = 1 THEN NEW.jb := NEW.jb || '{\"bb\": 2}'; END IF;"),
    ("u", "IF NEW.id = 2 THEN NEW.u := 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a19'; END IF;"),
    ("bi", "IF NEW.id = 2 THEN NEW.bi := NEW.bi || '\\x00'::bytea; END IF;"),
    ("d", "IF NEW.id = 2 THEN NEW.d := NEW.d + 1; END IF;"),
    ("ts", "IF NEW.id = 3 THEN NEW.ts := NEW.ts + interval '1 microsecond'; END IF;"),
    ("tstz", "IF NEW.id = 3 THEN NEW.tstz := NEW.tstz + interval '1 hour'; END IF;"),
    ("tm", "IF NEW.id = 2 THEN NEW.tm := NEW.tm - interval '1 microsecond'; END IF;"),
    ("iv", "IF NEW.id = 2 THEN NEW.iv := NEW.iv * 2; END IF;"),
    ("i8", "IF NEW.id = 6 THEN NEW.i8 := 0; END IF;"),  # a NULL the file gives, replaced by a default-like value
]


@pytest.mark.parametrize(("column", "body"), CHANGES, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CHANGES)])
def test_a_trigger_that_changes_one_value_is_caught_with_key_and_values(load, column, body):
    check = load("everything", everything_rows(), before=_trigger("everything", body))
    result = check.result
    assert not result.passed
    assert result.expected == 6 and result.actual == 5, result.detail
    assert "1 of 6 file row(s) differ" in result.detail and "1 changed" in result.detail
    assert [e["column"] for e in result.examples] == [column], result.examples
    example = result.examples[0]
    assert example["key"]["district_id"] == load.district
    assert example["file"] != example["stored"]
    assert f'column "{column}"' in result.detail


def test_the_examples_show_file_and_stored_values(load):
    body = "IF NEW.id = 3 THEN NEW.t := upper(NEW.t); NEW.tstz := NEW.tstz + interval '1 hour'; END IF;"
    check = load("everything", everything_rows(), before=_trigger("everything", body), timezone="Europe/Berlin")
    by_column = {e["column"]: e for e in check.result.examples}
    assert set(by_column) == {"t", "tstz"}
    assert by_column["t"] == {"key": {"district_id": load.district, "id": "3"}, "column": "t",
                              "file": "emoji 😀👩‍👩‍👧 family", "stored": "EMOJI 😀👩‍👩‍👧 FAMILY"}
    # Stored values are shown in UTC whatever the session's zone.
    assert by_column["tstz"]["stored"] == "2024-03-31 02:30:00+00"
    assert by_column["tstz"]["file"].startswith("2024-03-31 01:30:00")


def test_a_default_that_wins_over_the_file_is_caught(load):
    check = load("plain", pa.table({"id": pa.array([1, 2], pa.int32()), "t": ["from file", None]}),
                 before=["ALTER TABLE plain ALTER COLUMN t SET DEFAULT 'default'",
                         *_trigger("plain", "NEW.t := coalesce(NEW.t, 'default');")])
    assert not check.result.passed
    assert check.result.examples == [{"key": {"id": "2"}, "column": "t",
                                      "file": "NULL", "stored": "default"}]


def test_a_column_the_file_lacks_is_outside_and_named(load):
    check = load("plain", pa.table({"id": pa.array([1, 2], pa.int32()), "n": _dec(["1.5", "2"], 1, 8)}))
    assert check.result.passed, check.result.detail
    assert check.outside == {"t": "not in the file: the database's default"}
    assert check.compared == ["district_id", "id", "n"]


def test_a_row_dropped_or_added_by_the_database_is_named(load):
    data = pa.table({"id": pa.array([1, 2, 3], pa.int32()), "t": ["a", "b", "c"], "n": _dec(["1", "2", "3"], 0, 8)})
    check = load("plain", data, before=_trigger("plain", "IF NEW.id = 2 THEN RETURN NULL; END IF;"),
                 after=["INSERT INTO plain VALUES ('{district}', 9, 'extra', 9)"])
    result = check.result
    assert not result.passed
    assert "(0 changed, 1 only in the file, 1 only stored)" in result.detail
    assert result.actual == 2
    examples = {e["key"]["id"]: e for e in result.examples}
    assert examples["2"]["stored"] == "(no such row)" and "t=b" in examples["2"]["file"]
    assert examples["9"]["file"] == "(no such row)" and "t=extra" in examples["9"]["stored"]


def test_a_table_without_key_is_compared_as_a_multiset(load):
    data = pa.table({"a": pa.array([1, 1, 2], pa.int32()), "t": ["same", "same", "x"]})
    assert load("keyless", data).result.passed
    check = load("keyless", data, before=_trigger("keyless", "IF NEW.a = 2 THEN NEW.t := 'y'; END IF;"))
    assert not check.result.passed
    assert "no usable key" in check.result.detail
    assert "(0 changed, 1 only in the file, 1 only stored)" in check.result.detail
    shown = sorted((e["file"], e["stored"]) for e in check.result.examples)
    assert any("t=x" in f for f, _ in shown) and any("t=y" in s for _, s in shown)


def test_a_duplicate_row_lost_in_a_keyless_table_is_caught(load):
    data = pa.table({"a": pa.array([1, 1], pa.int32()), "t": ["same", "same"]})
    check = load("keyless", data, after=[("DELETE FROM keyless WHERE ctid = (SELECT min(ctid) FROM keyless "
                                         "WHERE district_id = '{district}')")])
    assert not check.result.passed and "1 only in the file" in check.result.detail


def test_file_types_other_than_the_columns_compare_by_value(load):
    utc = dt.UTC
    data = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "small": pa.array(["7", "-32768", None]),
        "big": pa.array([Decimal(12), Decimal(-3), None], pa.decimal128(19, 0)),  # (10, 0) fails in convert.py
        "f4": pa.array([0.5, -0.0, 2.0**-149], pa.float64()),  # a NaN is refused by convert.py (NaN != NaN)
        "n2": pa.array([Decimal("1.5"), Decimal("-0.1"), Decimal(0)], pa.decimal128(5, 1)),
        "nu": pa.array(["1.50", "-0", "12345.678901"]),
        "u": pa.array([uuid.UUID(int=1).bytes, uuid.UUID(int=2**128 - 1).bytes, None], pa.binary(16)),
        "d": pa.array([dt.datetime(2020, 1, 1), dt.datetime(1960, 6, 1), None], pa.timestamp("ms")),
        "tstz": pa.array([dt.datetime(2020, 1, 1, 12, tzinfo=utc), None, dt.datetime(1900, 1, 1, tzinfo=utc)],
                         pa.timestamp("ns", tz="Europe/Paris")),
        "tm": pa.array([0, 86_399_000, None], pa.time32("ms")),
        "t": pa.array([1, -2, None], pa.int64()),
    })
    check = load("converted", data, timezone="Asia/Kolkata")
    assert check.result.passed, check.result.detail
    assert check.outside == {}


@pytest.mark.parametrize("file_scale", SCALES)
def test_numerics_of_every_scale_are_equal_and_a_last_digit_is_caught(load, file_scale):
    col = f"n{file_scale}"
    tiny = f"{Decimal(1).scaleb(-file_scale):f}"
    data = pa.table({"id": pa.array([1, 2], pa.int32()), col: _dec([tiny, "-12.5" if file_scale else "-12"], file_scale),
                     "nu": _dec([tiny, "7"], file_scale, 38)})
    assert load("everything", data).result.passed
    step = tiny
    check = load("everything", data, before=_trigger("everything", f"IF NEW.id = 1 THEN NEW.{col} := NEW.{col} + {step}; "
                                                                    f"NEW.nu := NEW.nu + {step}; END IF;"))
    assert sorted(e["column"] for e in check.result.examples) == sorted([col, "nu"])


def test_the_district_filled_by_the_load_is_compared(load):
    load.fill = True
    check = load("plain", pa.table({"id": pa.array([1], pa.int32()), "t": ["x"], "n": _dec(["1.000"], 3, 8)}))
    assert check.result.passed, check.result.detail
    assert "district_id" in check.compared


def test_a_type_without_rendering_is_outside_and_named(load):
    check = load("odd", pa.table({"id": pa.array([1], pa.int32()), "x": ["<a>1</a>"], "t": ["y"]}))
    assert check.result.passed
    assert "xml" in check.outside["x"] and "no canonical rendering" in check.outside["x"]
    assert "x (xml" in check.result.detail


def test_upsert_compares_the_file_keys_only(load):
    before = ["INSERT INTO plain VALUES ('{district}', 1, 'old', 1), ('{district}', 5, 'untouched', 5)"]
    data = pa.table({"id": pa.array([1, 2], pa.int32()), "t": ["new", "b"], "n": _dec(["1", "2"], 0, 8)})
    check = load("plain", data, strategy="upsert", before=before)
    assert check.result.passed, check.result.detail
    assert check.result.actual == 2


def test_merge_and_replace_compare_the_whole_district(load):
    before = ["INSERT INTO plain VALUES ('{district}', 1, 'old', 1), ('{district}', 5, 'gone', 5)"]
    data = pa.table({"id": pa.array([1, 2], pa.int32()), "t": ["new", "b"], "n": _dec(["1", "2"], 0, 8)})
    for strategy in ("merge", "replace"):
        check = load("plain", data, strategy=strategy, before=before)
        assert check.result.passed, (strategy, check.result.detail)


def test_a_value_the_client_cannot_render_leaves_the_column_named(load, monkeypatch):
    def refuse(arr):
        raise canonical.UnrenderableValue("no such rendering in this test")

    broken = canonical.Rendering("text", canonical._TEXT.server, refuse)
    monkeypatch.setitem(canonical._BY_TYPE, "text", broken)
    check = load("odd", pa.table({"id": pa.array([1], pa.int32()), "t": ["y"]}))
    assert check.result.passed
    assert "cannot render" in check.outside["t"] and "district_id" in check.outside  # both text columns left out


def test_jsonb_text_matches_the_server(content_url):
    """The client's jsonb writer against PostgreSQL's own output, value by value."""
    import json

    import psycopg

    samples = ['{"b": 1, "a": {"dd": [1, 2], "c": null}}', '{"aa": 1, "b": 2, "é": 3, "z": 4}', '[1.0, 1e2, -0, 0.0]',
               '[1E-2, 12.345e1, 1.50e1, -0.0e5, 1e+400]', '"\\u0000x"'.replace("\\u0000", "\\u0007"),
               '"😀 \\ud83d\\ude00 \\/ \\u2028"', '{"k": {"k": {"k": []}}}', '{"": 0, " ": 1}', '{"a": 1, "a": {"b": 2}}']
    with psycopg.connect(content_url) as conn:
        for text in samples:
            stored = conn.execute("SELECT %s::jsonb::text", (text,)).fetchone()[0]
            ours = canonical.jsonb_text(json.loads(text, parse_float=Decimal, parse_int=Decimal))
            assert ours == stored, text


def test_the_row_hash_is_the_servers(content_url):
    import psycopg

    from cert_loader.verify.row_text import hash_sum, row_hashes

    texts = pa.array(["", "a,1:x", "ü😀,,", "x" * 5000])
    with psycopg.connect(content_url) as conn:
        total, hexes = conn.execute(
            "SELECT sum(('x' || left(md5(r), 16))::bit(64)::bigint), array_agg(left(md5(r), 16) ORDER BY o) "
            "FROM unnest(%s::text[]) WITH ORDINALITY u(r, o)", (texts.to_pylist(),)).fetchone()
    assert hash_sum(texts) == total
    assert row_hashes(texts) == hexes
    assert hash_sum(texts.slice(1, 2)) == hash_sum(pa.array(texts.to_pylist()[1:3]))


def test_a_large_district_is_checked_in_batches(load, monkeypatch):
    monkeypatch.setattr("cert_loader.verify.row_text.BATCH_ROWS", 1000)
    n = 25_000
    data = pa.table({"id": pa.array(range(n), pa.int32()), "t": [f"row {i} é" for i in range(n)],
                     "n": pa.array([Decimal(i).scaleb(-3) for i in range(n)], pa.decimal128(8, 3))})
    assert load("plain", data).result.passed
    check = load("plain", data, before=_trigger("plain", "IF NEW.id % 5000 = 17 THEN NEW.n := NEW.n + 1; END IF;"))
    assert "5 of 25000 file row(s) differ" in check.result.detail
    assert [e["key"]["id"] for e in check.result.examples] == ["10017", "15017", "17", "20017", "5017"]
    assert all(e["column"] == "n" for e in check.result.examples)




def test_a_key_the_database_generates_leaves_rows_matched_by_content(load):
    """An identity key is not in the file: rows are compared as a multiset; a naive file timestamp is UTC."""
    data = pa.table({"t": ["a", "b"], "naive": pa.array([dt.datetime(2024, 1, 1, 12), None], pa.timestamp("us"))})
    check = load("ident", data, timezone="Pacific/Auckland")
    assert check.result.passed, check.result.detail
    assert "id" in check.outside and check.compared == ["district_id", "t", "naive"]
    check = load("ident", data, before=_trigger("ident", "IF NEW.t = 'b' THEN NEW.naive := now(); END IF;"))
    assert not check.result.passed
    assert "no usable key" in check.result.detail and "1 only in the file, 1 only stored" in check.result.detail


# --- through the engine (store_load runs the check after counts and FKs; a failure rolls every store back) ---

def test_a_load_with_verify_content_passes_and_reports_every_table(pg_config, make_district, no_prepared_left):
    from cert_loader.engine import LoadOptions, load_district

    district = make_district(students=30)
    report = load_district(pg_config(), district, LoadOptions(verify="content"))
    assert report.status == "SUCCESS", report.error
    val = report.as_dict()["post_load_validation"]
    assert val["content_verification"] == "PASSED"
    loaded = [t for s in report.stores.values() for t in s.tables if not t.skipped]
    assert all(any(c.check == "content" and c.passed for c in t.checks) for t in loaded)
    assert all(c["check"] != "content" or c["expected"] == c["actual"] for c in val["tables"])
    from cert_loader.report import render_summary

    assert "content:       PASSED" in render_summary(report)


def test_a_load_with_counts_only_does_not_run_content(pg_config, make_district, no_prepared_left):
    from cert_loader.engine import LoadOptions, load_district

    report = load_district(pg_config(["ids"]), make_district(students=10), LoadOptions())
    assert report.status == "SUCCESS", report.error
    val = report.as_dict()["post_load_validation"]
    assert val["content_verification"] == "NOT_RUN" and val["content_outside_comparison"] == {}
    assert not any(c.check == "content" for c in report.checks)


def test_a_trigger_in_cert_fails_the_load_and_rolls_every_store_back(pg_config, make_district, sample_stores,
                                                                     no_prepared_left):
    import psycopg

    from cert_loader.engine import LoadOptions, load_district
    from cert_loader_tests.fix_district import store_snapshot

    district = make_district(students=30)
    fn = f"tg_{secrets.token_hex(3)}"
    with psycopg.connect(sample_stores["ids"], autocommit=True) as conn:
        # A function body takes no parameters: the name and the district are composed by psycopg.sql.
        conn.execute(sql.SQL("CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                             "IF NEW.district_id = {} AND NEW.first_name IS NOT NULL THEN "
                             "NEW.first_name := upper(NEW.first_name); END IF; RETURN NEW; END $$").format(
            sql.Identifier(fn), sql.Literal(district)))
        conn.execute(sql.SQL("CREATE TRIGGER {0} BEFORE INSERT ON edfi.student FOR EACH ROW EXECUTE FUNCTION {0}()")
                     .format(sql.Identifier(fn)))
    try:
        before = store_snapshot(sample_stores, district)
        counts_only = load_district(pg_config(), make_district(students=5), LoadOptions())
        assert counts_only.status == "SUCCESS"  # the counts cannot see it (another district: the trigger skips it)
        report = load_district(pg_config(), district, LoadOptions(verify="content"))
    finally:
        with psycopg.connect(sample_stores["ids"], autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TRIGGER {} ON edfi.student").format(sql.Identifier(fn)))
            conn.execute(sql.SQL("DROP FUNCTION {}()").format(sql.Identifier(fn)))
    assert report.status == "FAILED"
    assert store_snapshot(sample_stores, district) == before  # nothing written in any store
    assert all(s.transaction in ("ROLLED_BACK", "NOT_STARTED") for s in report.stores.values())
    data = report.as_dict()
    assert data["post_load_validation"]["content_verification"] == "FAILED"
    assert "edfi.student" in data["error"]["message"] and "content" in data["error"]["message"]
    (failed,) = [c for c in report.checks if not c.passed]
    assert (failed.store, failed.table, failed.check) == ("ids", "edfi.student", "content")
    assert failed.examples and all(e["column"] == "first_name" for e in failed.examples)
    assert all(e["stored"] == e["file"].upper() for e in failed.examples)


def test_the_cli_takes_verify():
    from cert_loader.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["load", "d1"]).verify == "counts"
    assert parser.parse_args(["load", "d1", "--verify", "content"]).verify == "content"
    with pytest.raises(SystemExit):
        parser.parse_args(["load", "d1", "--verify", "values"])


def test_dagster_run_config_takes_verify():
    from cert_loader.defs.assets import LoadConfig, Verify

    assert LoadConfig().verify == Verify.counts
    assert LoadConfig(verify="content").verify == Verify.content


def test_dagster_check_result_carries_the_columns_outside():
    import dagster as dg

    from cert_loader.defs.checks import TABLE_CHECKS, to_check_results
    from cert_loader.results import CheckResult

    assert "content" in TABLE_CHECKS
    failed = CheckResult("ids", "edfi.student", "content", False, 30, 29, "1 of 30 file row(s) differ",
                         [{"key": {"student_id": "7"}, "column": "first_name", "file": "Ann", "stored": "ANN"}],
                         outside={"loaded_at": "not in the file: the database's default"})
    (result,) = to_check_results(dg.AssetKey(["cert", "ids", "edfi.student"]), [failed])
    assert (result.check_name, result.passed) == ("content", False)
    assert result.metadata["outside_comparison"].data == {"edfi.student": {"loaded_at": "not in the file: the database's default"}}
    assert result.metadata["examples"].data[0]["stored"] == "ANN"
    assert failed.as_dict()["outside"] and "outside" not in CheckResult("ids", "t", "row_count", True).as_dict()


@pytest.mark.parametrize("strategy", ["upsert", "merge", "replace"])
def test_every_strategy_passes_content_on_a_reload(pg_config, make_district, no_prepared_left, strategy):
    from cert_loader.engine import LoadOptions, load_district

    district = make_district(students=20)
    assert load_district(pg_config(["ids", "hcp1"]), district, LoadOptions()).status == "SUCCESS"
    report = load_district(pg_config(["ids", "hcp1"]), district, LoadOptions(strategy=strategy, verify="content"))
    assert report.status == "SUCCESS", report.error
    assert report.as_dict()["post_load_validation"]["content_verification"] == "PASSED"
