"""Read and validate a district's graph files before anything is written, so Neo4j never sees a bad value."""

from __future__ import annotations

import contextlib
import gc
import json
import json.scanner
import operator
import re
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cert_loader.constants import DISTRICT_COLUMN, GRAPH_STORE
from cert_loader.data_root import data_root, parquet_file_source
from cert_loader.errors import InputError

# The one pattern for labels and relationship types: they are formatted into Cypher (DESIGN.md sections 6, 9).
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# The run marker's label (DESIGN.md section 5); district data may not use it, so markers never look like data.
MARKER_LABEL = "CertLoaderRun"
# Neo4j integers are signed 64-bit; the driver cannot send anything larger.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_decode = json.JSONDecoder().decode
# The decoder's own scanner without decode()'s two whitespace regexes: the fast path's JSON reader.
_scan = json.scanner.make_scanner(json.JSONDecoder())

NODE_COLUMNS = ("id", "labels", DISTRICT_COLUMN, "properties")
REL_COLUMNS = ("start", "end", "type", "properties")
STORE = GRAPH_STORE
# The property keys a row's ``props`` never carries: the store sets them from the key (DESIGN.md section 2).
NODE_DROP = ("id", DISTRICT_COLUMN)
REL_DROP = (DISTRICT_COLUMN,)
# Rows built per step when a sequence is walked whole, and property strings checked per step: a batch of
# dicts or strings at a time, never a whole label's.
STEP = 10_000


class _TypedProps:
    """The properties of one label's or type's rows as typed Arrow columns, one per key, parsed once.

    The fast path fills it: each key has one scalar type within a label or type (section 9), so its values
    fit one Arrow column (null where a row lacks the key); ``shapes`` holds each distinct key tuple (in the
    row's own order) and ``sids`` each row's. A slice's dicts are zipped from the columns' slices.
    """

    __slots__ = ("sids", "shapes", "cols")

    def __init__(self, sids: pa.Array, shapes: list[tuple[str, ...]], cols: dict[str, pa.Array]) -> None:
        self.sids, self.shapes, self.cols = sids, shapes, cols

    def __len__(self) -> int:
        return len(self.sids)

    def dicts(self, start: int, count: int) -> list[dict[str, Any]]:
        sids = self.sids.slice(start, count).to_pylist()
        if not sids:
            return []
        if len(self.shapes) == 1 or sids.count(sids[0]) == len(sids):  # one shape: zip its columns
            keys = self.shapes[sids[0]]
            return _zipped(keys, [self.cols[k].slice(start, count).to_pylist() for k in keys], len(sids))
        shapes = self.shapes
        wanted = {k for sid in set(sids) for k in shapes[sid]}
        cols = {k: self.cols[k].slice(start, count).to_pylist() for k in wanted}
        return [{k: cols[k][j] for k in shapes[sid]} for j, sid in enumerate(sids)]

    def take(self, idx: pa.Array) -> "_TypedProps":
        return _TypedProps(self.sids.take(idx), self.shapes, {k: c.take(idx) for k, c in self.cols.items()})


def _zipped(keys: tuple[str, ...], cols: list[list], count: int) -> list[dict[str, Any]]:
    """One dict per row from one column per key: a dict display for the usual few keys (about 2.5x faster
    than ``dict(zip(...))``), map/zip for more."""
    if len(keys) == 0:
        return [{} for _ in range(count)]
    if len(keys) == 1:
        k0, = keys
        return [{k0: a} for a in cols[0]]
    if len(keys) == 2:
        k0, k1 = keys
        return [{k0: a, k1: b} for a, b in zip(*cols)]
    if len(keys) == 3:
        k0, k1, k2 = keys
        return [{k0: a, k1: b, k2: c} for a, b, c in zip(*cols)]
    return list(map(dict, map(zip, repeat(keys), zip(*cols))))


class _JsonProps:
    """The properties of one label's or type's rows as their JSON text, parsed again for each slice asked.

    The checked reader's input (anything the fast path did not vouch for) is kept this way: its values
    may be lists or strings Arrow cannot hold, and it was parsed and checked row by row already.
    """

    __slots__ = ("raws", "drop")

    def __init__(self, raws: pa.Array, drop: tuple[str, ...]) -> None:
        self.raws, self.drop = raws, drop

    def __len__(self) -> int:
        return len(self.raws)

    def dicts(self, start: int, count: int) -> list[dict[str, Any]]:
        drop = self.drop
        return [_props_of(raw, drop) for raw in self.raws.slice(start, count).to_pylist()]

    def take(self, idx: pa.Array) -> "_JsonProps":
        return _JsonProps(self.raws.take(idx), self.drop)


def _props_of(raw: str | None, drop: tuple[str, ...]) -> dict[str, Any]:
    """One checked properties string as the row's ``props``: what the checked reader's _parse_props returns."""
    if raw is None:
        return {}
    try:
        props, end = _scan(raw, 0)
    except (StopIteration, ValueError):
        end = -1
    if end != len(raw):  # whitespace around the object: the checked reader accepted it
        props = _decode(raw)
    if None in props.values() or any(k in props for k in drop):
        props = {k: v for k, v in props.items() if v is not None and k not in drop}
    return props


class _Rows(Sequence):
    """One label's nodes or one type's relationships, held as Arrow columns and built into dicts on demand.

    Indexing, slicing and iteration build the row dicts only for what is asked, so a district's graph is
    held in a few compact buffers, not two dicts per row (issue 13); iteration builds STEP rows at a time.
    Everything was validated when the file was read: building a row cannot fail.
    """

    __slots__ = ("_keys", "_props")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, keys: tuple[pa.Array, ...], props: _TypedProps | _JsonProps) -> None:
        self._keys, self._props = keys, props  # the key columns (id, or start and end); the properties

    def __len__(self) -> int:
        return len(self._props)

    def __getitem__(self, item: Any) -> Any:
        n = len(self)
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            if step == 1:
                return self._build(start, max(stop - start, 0))
            picked = self.take(range(start, stop, step))
            return picked._build(0, len(picked))
        i = operator.index(item)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{type(self).__name__} index out of range")
        return self._build(i, 1)[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for start in range(0, len(self), STEP):
            yield from self._build(start, STEP)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (_Rows, list, tuple)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self)} rows>"

    def take(self, indices: Iterable[int]) -> "_Rows":
        """The rows at ``indices`` (in that order), still unbuilt."""
        idx = indices if isinstance(indices, pa.Array) else pa.array(list(indices), pa.int64())
        return type(self)(tuple(c.take(idx) for c in self._keys), self._props.take(idx))

    def _key(self, i: int, start: int = 0, count: int | None = None) -> list:
        col = self._keys[i]
        return (col if start == 0 and (count is None or count >= len(col)) else col.slice(start, count)).to_pylist()

    def _build(self, start: int, count: int) -> list[dict[str, Any]]:
        raise NotImplementedError


class NodeRows(_Rows):
    """One label's nodes: ``{"id", "props"}`` per row, in file order."""

    __slots__ = ()

    def ids(self) -> list[str]:
        return self._key(0)

    def _build(self, start: int, count: int) -> list[dict[str, Any]]:
        ids = self._key(0, start, count)
        return [{"id": i, "props": p} for i, p in zip(ids, self._props.dicts(start, count))]


class RelRows(_Rows):
    """One type's relationships: ``{"start", "end", "props"}`` per row, in file order."""

    __slots__ = ()

    def ends(self) -> list[tuple[str, str]]:
        return list(zip(self._key(0), self._key(1)))

    def starts(self) -> list[str]:
        return self._key(0)

    def by_pair(self, label_of: dict[str, str]) -> dict[tuple[str, str], "RelRows"]:
        """The rows grouped by their ends' labels (first seen first), each group in file order, still unbuilt."""
        groups: dict[tuple[str, str], list[int]] = {}
        pairs = zip(map(label_of.__getitem__, self._key(0)), map(label_of.__getitem__, self._key(1)))
        for i, pair in enumerate(pairs):
            group = groups.get(pair)
            if group is None:
                groups[pair] = group = []
            group.append(i)
        if len(groups) == 1:
            return {pair: self for pair in groups}
        return {pair: self.take(idx) for pair, idx in groups.items()}

    def _build(self, start: int, count: int) -> list[dict[str, Any]]:
        starts, ends = self._key(0, start, count), self._key(1, start, count)
        return [{"start": s, "end": e, "props": p} for s, e, p in zip(starts, ends, self._props.dicts(start, count))]


def node_ids(rows: Sequence[dict]) -> list[str]:
    """The ids of a label's rows without building the rows (any sequence of ``{"id", ...}`` works)."""
    return rows.ids() if isinstance(rows, NodeRows) else [r["id"] for r in rows]


def rel_ends(rows: Sequence[dict]) -> list[tuple[str, str]]:
    """(start, end) of a type's rows without building the rows."""
    return rows.ends() if isinstance(rows, RelRows) else [(r["start"], r["end"]) for r in rows]


def rel_starts(rows: Sequence[dict]) -> list[str]:
    return rows.starts() if isinstance(rows, RelRows) else [r["start"] for r in rows]


def subset(rows: Sequence[dict], indices: list[int]) -> Sequence[dict]:
    """The rows at ``indices``: unbuilt for a NodeRows/RelRows, a list otherwise."""
    return rows.take(indices) if isinstance(rows, _Rows) else [rows[i] for i in indices]


@dataclass
class GraphInput:
    """One district's graph, validated and grouped by label and relationship type (DESIGN.md section 2).

    ``nodes[label]`` is a sequence of ``{"id", "props"}`` and ``relationships[type]`` one of ``{"start",
    "end", "props"}``, in file order; ``props`` never carries ``id`` or ``district_id`` (the store sets those
    from the key). read_graph_input gives NodeRows and RelRows, which build those dicts only for the slice
    asked; the checked reader alone (the tests' reference) gives lists.
    """

    district: str
    nodes: dict[str, Sequence[dict[str, Any]]] = field(default_factory=dict)
    relationships: dict[str, Sequence[dict[str, Any]]] = field(default_factory=dict)
    label_of: dict[str, str] = field(default_factory=dict, repr=False)
    nodes_path: Path | None = None
    rels_path: Path | None = None

    @property
    def labels(self) -> list[str]:
        return list(self.nodes)

    @property
    def types(self) -> list[str]:
        return list(self.relationships)

    @property
    def node_count(self) -> int:
        return sum(len(v) for v in self.nodes.values())

    @property
    def relationship_count(self) -> int:
        return sum(len(v) for v in self.relationships.values())

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            "nodes": {k: len(v) for k, v in self.nodes.items()},
            "relationships": {k: len(v) for k, v in self.relationships.items()},
        }


def check_identifier(name: Any, what: str, *, table: str, where: str) -> str:
    """Return ``name`` if it may be formatted into Cypher as a label or type, else raise InputError."""
    if not isinstance(name, str) or not IDENTIFIER_RE.match(name):
        raise InputError(
            f"{where}: {what} {name!r} is not a valid identifier (letters, digits, underscore, "
            f"not starting with a digit, at most 64 characters)",
            store=STORE, table=table, hint=f"rename the {what} upstream",
        )
    if what == "label" and name == MARKER_LABEL:
        raise InputError(
            f"{where}: label {name!r} is reserved for the loader's run markers",
            store=STORE, table=table, hint="rename the label upstream",
        )
    return name


_SCALARS = {str: "string", int: "integer", float: "float", bool: "boolean"}


def _value_type(value: Any, key: str, *, table: str, where: Any) -> str:
    """The Neo4j type of one property value, or InputError for a value Neo4j cannot store."""
    kind = _SCALARS.get(type(value))
    if kind is not None and (kind != "integer" or INT64_MIN <= value <= INT64_MAX):
        return kind

    def refuse(what: str) -> InputError:
        return InputError(
            f"{where() if callable(where) else where}: property {key!r} {what}", store=STORE, table=table,
            hint="Neo4j stores only strings, numbers, booleans and lists of one of those types; fix it upstream",
        )

    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise refuse(f"integer {value} does not fit in 64 bits")
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        raise refuse("is a nested object")
    if isinstance(value, list):
        kinds = set()
        for item in value:
            if item is None:
                raise refuse("is a list containing null")
            if isinstance(item, (list, dict)):
                raise refuse("is a list containing a list or an object")
            kinds.add(_value_type(item, key, table=table, where=where))
        if len(kinds) > 1:
            raise refuse(f"is a list of mixed types ({', '.join(sorted(kinds))})")
        return f"list<{kinds.pop()}>" if kinds else "list<>"
    raise refuse(f"has an unsupported value {value!r}")


class _TypeRegistry:
    """Remembers each property's type per label/type, so one label never mixes types (DESIGN.md section 9)."""

    def __init__(self, table: str, kind: str) -> None:
        self.table, self.kind = table, kind
        self.seen: dict[tuple[str, str], tuple[str, str]] = {}

    def check(self, group: str, key: str, vtype: str, where: Any) -> None:
        if vtype == "list<>":  # an empty list fits any list type
            return
        first = self.seen.get((group, key))
        if first is None:
            self.seen[(group, key)] = (vtype, where)
        elif first[0] != vtype:
            first = (first[0], first[1]() if callable(first[1]) else first[1])
            where = where() if callable(where) else where
            raise InputError(
                f"property {key!r} of {self.kind} {group} is {first[0]} at {first[1]} but {vtype} at {where}",
                store=STORE, table=self.table,
                hint=f"make every {self.kind} {group} use one type per property upstream",
            )


def _parse_props(
    raw: Any, *, table: str, where: Any, group: str, types: _TypeRegistry, drop: tuple[str, ...]
) -> dict[str, Any]:
    """Parse one JSON properties string; ``where`` may be a callable so the hot path builds no text."""
    if raw is None:
        return {}
    try:
        props = _decode(raw)
    except (TypeError, ValueError) as exc:
        where = where() if callable(where) else where
        raise InputError(
            f"{where}: properties is not valid JSON ({exc})", store=STORE, table=table,
            hint="write properties as a JSON object string",
        ) from exc
    if not isinstance(props, dict):
        where = where() if callable(where) else where
        raise InputError(
            f"{where}: properties is a JSON {type(props).__name__}, not an object", store=STORE, table=table,
            hint="write properties as a JSON object string",
        )
    out: dict[str, Any] = {}
    for key, value in props.items():
        if not isinstance(key, str) or not key or "\x00" in key:
            where = where() if callable(where) else where
            # Neo4j refuses empty token names and NUL bytes; the test server does not (DESIGN.md section 9).
            raise InputError(
                f"{where}: property key {key!r} is not a non-empty string without NUL bytes",
                store=STORE, table=table, hint="rename the property upstream",
            )
        if value is None or key in drop:  # null means absent; the key columns win (section 2)
            continue
        types.check(group, key, _value_type(value, key, table=table, where=where), where)
        out[key] = value
    return out


def _read_arrays(path: Path, columns: tuple[str, ...], optional: tuple[str, ...], table: str) -> dict[str, pa.Array]:
    """The file's wanted columns as one string array each; InputError for a missing or non-string column."""
    try:
        schema = pq.read_schema(parquet_file_source(path))
    except (OSError, pa.ArrowException) as exc:
        raise InputError(
            f"cannot read {path}: {exc}", store=STORE, table=table, hint="check the file exists and is parquet",
        ) from exc
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise InputError(
            f"{path}: column(s) {', '.join(missing)} missing (found {', '.join(schema.names)})",
            store=STORE, table=table, hint=f"write the columns {', '.join(columns)}",
        )
    wanted = list(columns) + [c for c in optional if c in schema.names]
    data = pq.read_table(parquet_file_source(path), columns=wanted)
    out: dict[str, pa.Array] = {}
    for name in wanted:
        col = data.column(name)
        ctype = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        if not (pa.types.is_string(ctype) or pa.types.is_large_string(ctype)
                or pa.types.is_string_view(ctype) or pa.types.is_null(ctype)):
            raise InputError(
                f"{path}: column {name!r} is {col.type}, expected string", store=STORE, table=table,
                hint="write the column as strings upstream",
            )
        out[name] = col.cast(pa.string()).combine_chunks()
    return out


def _read_columns(path: Path, columns: tuple[str, ...], optional: tuple[str, ...], table: str) -> dict[str, list]:
    """The wanted columns as Python lists: what the checked reader walks."""
    return {name: col.to_pylist() for name, col in _read_arrays(path, columns, optional, table).items()}


def _required(value: Any, column: str, where: str, table: str) -> str:
    if value is None or value == "":
        raise InputError(f"{where}: {column} is empty", store=STORE, table=table, hint=f"give every row a {column}")
    return value


def read_graph_input(nodes_path: Path, rels_path: Path | None, district: str) -> GraphInput:
    """Read ``nodes.parquet`` and ``relationships.parquet`` of ``district`` and refuse anything unloadable.

    Row numbers in messages count from 1. Nothing is written anywhere (DESIGN.md section 5, step 1).
    A district's files are first read on a fast path that checks whole columns at once; anything it does
    not vouch for (a bad value, but also just an unusual one) is read again by the checked, row-by-row
    reader, which is the reference: it accepts the same files and names the first bad row. Either way
    every properties string is parsed and checked here, and the rows are held as columns (the fast
    path's values typed, the checked reader's as their JSON text) and built batch by batch as the load
    walks them (NodeRows, RelRows).
    """
    nodes_path = data_root(nodes_path)
    rels_path = data_root(rels_path) if rels_path else None
    nodes = _read_arrays(nodes_path, NODE_COLUMNS, (), "nodes")
    rels = _read_arrays(rels_path, REL_COLUMNS, (DISTRICT_COLUMN,), "relationships") if rels_path else None
    try:
        with _collector_paused():
            out = GraphInput(district=district, nodes_path=nodes_path, rels_path=rels_path)
            if _fast_read(nodes, rels, out):
                return out
            checked = GraphInput(district=district, nodes_path=nodes_path, rels_path=rels_path)
            _checked_nodes({k: v.to_pylist() for k, v in nodes.items()}, checked, keep=False)
            if rels is not None:
                _checked_relationships({k: v.to_pylist() for k, v in rels.items()}, checked, keep=False)
            del checked  # valid: kept as columns, like the fast path's
            out = GraphInput(district=district, nodes_path=nodes_path, rels_path=rels_path)
            _group(nodes, rels, out)
            return out
    finally:
        del nodes, rels
        # The file's columns and the grouping's copies are freed by now; give their pages back, or the Arrow
        # allocator keeps them (~45 MB resident on the seed's graph).
        pa.default_memory_pool().release_unused()


@contextlib.contextmanager
def _collector_paused():
    """No cyclic garbage collection while the file is checked: the checked reader builds many small objects
    and makes no cycles, and a full collection walks every object built so far, again and again as they pile
    up. Reference counting still frees everything as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _groups(names: pa.Array, cols: list[pa.Array]) -> Iterator[tuple[str, list[pa.Array]]]:
    """``cols`` split by the value of ``names`` (no nulls), first seen first, each group in file order."""
    enc = names.dictionary_encode()
    codes = enc.indices
    order = pc.sort_indices(codes)  # stable: file order within a group
    counts = pc.value_counts(codes)
    size = dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))
    at = 0
    for code, name in enumerate(enc.dictionary.to_pylist()):
        idx = order.slice(at, size[code])
        at += size[code]
        yield name, [c.take(idx) for c in cols]


def _group(nodes: dict[str, pa.Array], rels: dict[str, pa.Array] | None, out: GraphInput,
           props: Any = None) -> bool:
    """Fill ``out`` from valid columns: the rows per label and type, and ``label_of``.

    ``props(raws, drop)`` turns one label's or type's properties strings into what its rows are built
    from (the fast path's _typed_props); it may return None, and then ``out`` is not filled and the result
    is False. Without it the strings are kept as they are (_JsonProps).
    """
    props = props or _JsonProps
    ids, labels = nodes["id"], nodes["labels"]
    node_rows: dict[str, NodeRows] = {}
    for label, (label_ids, raws) in _groups(labels, [ids, nodes["properties"]]):
        held = props(raws, NODE_DROP)
        if held is None:
            return False
        node_rows[label] = NodeRows((label_ids,), held)
    rel_rows: dict[str, RelRows] = {}
    if rels is not None:
        for rtype, (starts, ends, raws) in _groups(rels["type"], [rels["start"], rels["end"], rels["properties"]]):
            held = props(raws, REL_DROP)
            if held is None:
                return False
            rel_rows[rtype] = RelRows((starts, ends), held)
    enc = labels.dictionary_encode()
    names = enc.dictionary.to_pylist()
    out.label_of = dict(zip(ids.to_pylist(), map(names.__getitem__, enc.indices.to_pylist())))
    out.nodes, out.relationships = node_rows, rel_rows
    return True


def _fast_read(nodes: dict[str, pa.Array], rels: dict[str, pa.Array] | None, out: GraphInput) -> bool:
    """Fill ``out`` from clean columns and return True; return False at the first thing not plainly valid.

    Checks whole columns at once (ids present and unique, one district, valid labels and types, every
    relationship end a district node), then parses the properties once, a label's or a type's at a time,
    into typed columns.
    """
    ids, labels = nodes["id"], nodes["labels"]
    if ids.null_count or labels.null_count or pc.count_distinct(ids).as_py() != len(ids):
        return False
    if len(ids) and (pc.any(pc.equal(ids, "")).as_py()
                     or pc.unique(nodes[DISTRICT_COLUMN]).to_pylist() != [out.district]):
        return False
    if not all(_plain_name(label) for label in pc.unique(labels).to_pylist()):
        return False
    if rels is not None:
        for end in (rels["start"], rels["end"]):  # also catches empty and null ends: ids hold neither
            if pc.is_in(end, value_set=ids).false_count:
                return False
        if DISTRICT_COLUMN in rels and set(pc.unique(rels[DISTRICT_COLUMN]).to_pylist()) - {out.district, None}:
            return False
        types = rels["type"]
        if types.null_count or not all(_plain_name(t, label=False) for t in pc.unique(types).to_pylist()):
            return False
    return _group(nodes, rels, out, _typed_props)


def _plain_name(name: Any, *, label: bool = True) -> bool:
    return isinstance(name, str) and bool(IDENTIFIER_RE.match(name)) and not (label and name == MARKER_LABEL)


# The Python types the fast path keeps, and the Arrow type of each (bool before int: exact types only).
_ARROW_TYPES = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def _typed_props(raws: pa.Array, drop: tuple[str, ...]) -> _TypedProps | None:
    """One label's or type's properties strings parsed into typed columns, or None where the checked reader
    must look (it may still accept them): anything but plain JSON objects of scalars, one type per key."""
    cols: dict[str, tuple[type, list]] = {}
    shape_ids: dict[tuple[str, ...], int] = {}
    sids: list[int] = []
    scan, arrow_types, lo, hi = _scan, _ARROW_TYPES, INT64_MIN, INT64_MAX
    for start in range(0, len(raws), STEP):
        for raw in raws.slice(start, STEP).to_pylist():
            if raw is None:
                shape: tuple[str, ...] = ()
            else:
                try:
                    props, end = scan(raw, 0)
                except (StopIteration, ValueError):
                    return None
                if end != len(raw) or type(props) is not dict:
                    return None
                skipped = False
                for key, value in props.items():
                    if value is None or key in drop:
                        if not key or "\x00" in key:
                            return None  # refused even with a null value: the checked reader names it
                        skipped = True
                        continue
                    col = cols.get(key)
                    if col is None:  # a new key of the label or type: its name and type, once
                        if type(value) not in arrow_types or not key or "\x00" in key:
                            return None  # lists, odd keys: the checked reader decides
                        cols[key] = col = (type(value), [])
                    elif type(value) is not col[0]:
                        return None  # the checked reader names the row whose type differs
                    if col[0] is int and not lo <= value <= hi:
                        return None
                    col[1].append(value)
                shape = (tuple(k for k, v in props.items() if v is not None and k not in drop) if skipped
                         else tuple(props))
            sid = shape_ids.get(shape)
            if sid is None:
                shape_ids[shape] = sid = len(shape_ids)
            sids.append(sid)
    sid_array = pa.array(sids, pa.int32())
    shapes = list(shape_ids)
    arrays: dict[str, pa.Array] = {}
    for key, (kind, values) in cols.items():
        try:
            array = pa.array(values, arrow_types[kind])
        except (pa.ArrowException, ValueError, OverflowError, TypeError):
            return None  # e.g. a lone surrogate (\ud800) Arrow cannot hold: the checked reader keeps it as text
        if len(values) != len(sids):  # absent from some rows: null there
            has = pa.array([sid for sid, keys in enumerate(shapes) if key in keys], pa.int32())
            array = pc.replace_with_mask(pa.nulls(len(sids), array.type), pc.is_in(sid_array, value_set=has), array)
        arrays[key] = array
    return _TypedProps(sid_array, shapes, arrays)


def _checked_nodes(cols: dict[str, list], out: GraphInput, *, keep: bool = True) -> None:
    """The reference reader of the nodes: row by row, the first bad row named.

    ``keep`` false: only check (and fill ``label_of``), without keeping the rows.
    """
    district = out.district
    types = _TypeRegistry("nodes", "label")
    rows = zip(cols["id"], cols["labels"], cols[DISTRICT_COLUMN], cols["properties"])
    valid_labels: set[str] = set()
    for row, (node_id, label, node_district, raw) in enumerate(rows, start=1):
        node_id = _required(node_id, "id", f"row {row}", "nodes")

        def where(node_id: str = node_id, row: int = row) -> str:
            return f"node {node_id!r} (row {row})"

        if node_district != district:
            raise InputError(
                f"{where()}: district_id is {node_district!r}, not the partition's {district!r}",
                store=STORE, table="nodes", district=district,
                hint="load each district from its own folder; fix the district_id upstream",
            )
        if label not in valid_labels:
            valid_labels.add(check_identifier(label, "label", table="nodes", where=where()))
        if node_id in out.label_of:
            raise InputError(
                f"{where()}: duplicate node id {node_id!r}", store=STORE, table="nodes", district=district,
                hint="node ids must be unique per district; fix the nodes file upstream",
            )
        props = _parse_props(raw, table="nodes", where=where, group=label, types=types, drop=NODE_DROP)
        out.label_of[node_id] = label
        if keep:
            out.nodes.setdefault(label, []).append({"id": node_id, "props": props})


def _checked_relationships(cols: dict[str, list], out: GraphInput, *, keep: bool = True) -> None:
    """The reference reader of the relationships (after the nodes): row by row, the first bad row named."""
    types = _TypeRegistry("relationships", "relationship type")
    districts = cols.get(DISTRICT_COLUMN) or [None] * len(cols["start"])
    rows = zip(cols["start"], cols["end"], cols["type"], cols["properties"], districts)
    valid_types: set[str] = set()
    label_of = out.label_of
    for row, (start, end, rtype, raw, rel_district) in enumerate(rows, start=1):
        start = _required(start, "start", f"row {row}", "relationships")
        end = _required(end, "end", f"row {row}", "relationships")

        def where(start: str = start, end: str = end, rtype: Any = rtype, row: int = row) -> str:
            return f"row {row} ({start!r})-[{rtype}]->({end!r})"

        if rel_district is not None and rel_district != out.district:
            raise InputError(
                f"{where()}: district_id is {rel_district!r}, not the partition's {out.district!r}",
                store=STORE, table="relationships", district=out.district, hint="fix the district_id upstream",
            )
        if start not in label_of or end not in label_of:
            role, node_id = ("start", start) if start not in label_of else ("end", end)
            raise InputError(
                f"{where()}: {role} node {node_id!r} is not among district {out.district!r}'s nodes",
                store=STORE, table="relationships", district=out.district,
                hint="add the node to nodes.parquet or drop the relationship upstream",
            )
        if rtype not in valid_types:
            valid_types.add(check_identifier(rtype, "relationship type", table="relationships", where=where()))
        props = _parse_props(raw, table="relationships", where=where, group=rtype, types=types, drop=REL_DROP)
        if keep:
            out.relationships.setdefault(rtype, []).append({"start": start, "end": end, "props": props})
