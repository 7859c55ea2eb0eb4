"""Read and validate a district's graph files before anything is written, so Neo4j never sees a bad value."""

from __future__ import annotations

import contextlib
import gc
import json
import json.scanner
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
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


@dataclass
class GraphInput:
    """One district's graph, validated and grouped by label and relationship type (DESIGN.md section 2).

    ``nodes[label]`` holds ``{"id", "props"}`` and ``relationships[type]`` holds ``{"start", "end", "props"}``;
    ``props`` never carries ``id`` or ``district_id`` (the store sets those from the key).
    """

    district: str
    nodes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    relationships: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
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


def _read_columns(path: Path, columns: tuple[str, ...], optional: tuple[str, ...], table: str) -> dict[str, list]:
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
    out: dict[str, list] = {}
    for name in wanted:
        col = data.column(name)
        ctype = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        if not (pa.types.is_string(ctype) or pa.types.is_large_string(ctype)
                or pa.types.is_string_view(ctype) or pa.types.is_null(ctype)):
            raise InputError(
                f"{path}: column {name!r} is {col.type}, expected string", store=STORE, table=table,
                hint="write the column as strings upstream",
            )
        out[name] = col.cast(pa.string()).to_pylist()
    return out


def _required(value: Any, column: str, where: str, table: str) -> str:
    if value is None or value == "":
        raise InputError(f"{where}: {column} is empty", store=STORE, table=table, hint=f"give every row a {column}")
    return value


def read_graph_input(nodes_path: Path, rels_path: Path | None, district: str) -> GraphInput:
    """Read ``nodes.parquet`` and ``relationships.parquet`` of ``district`` and refuse anything unloadable.

    Row numbers in messages count from 1. Nothing is written anywhere (DESIGN.md section 5, step 1).
    A district's files are first read on a fast path that checks whole columns at once; anything it does
    not vouch for (a bad value, but also just an unusual one) is read again by the checked, row-by-row
    reader, which is the reference: it accepts the same files and names the first bad row.
    """
    nodes_path = data_root(nodes_path)
    rels_path = data_root(rels_path) if rels_path else None
    nodes = _read_columns(nodes_path, NODE_COLUMNS, (), "nodes")
    rels = _read_columns(rels_path, REL_COLUMNS, (DISTRICT_COLUMN,), "relationships") if rels_path else None
    with _collector_paused():
        out = GraphInput(district=district, nodes_path=nodes_path, rels_path=rels_path)
        if _fast_read(nodes, rels, out):
            return out
        out = GraphInput(district=district, nodes_path=nodes_path, rels_path=rels_path)
        _checked_nodes(nodes, out)
        if rels is not None:
            _checked_relationships(rels, out)
        return out


@contextlib.contextmanager
def _collector_paused():
    """No cyclic garbage collection while the rows are built: they make no cycles, and a full collection
    walks every object built so far, again and again as they pile up (~0.7 s of the seed graph's 350k rows,
    on the load's critical path). Reference counting still frees everything as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _fast_read(nodes: dict[str, list], rels: dict[str, list] | None, out: GraphInput) -> bool:
    """Fill ``out`` from clean columns and return True; return False at the first thing not plainly valid.

    Checks whole columns with set operations (ids present and unique, one district, valid labels and
    types, every relationship end a district node), then only parses properties row by row.
    """
    ids, labels = nodes["id"], nodes["labels"]
    id_set = set(ids)
    if len(id_set) != len(ids) or None in id_set or "" in id_set or set(nodes[DISTRICT_COLUMN]) - {out.district}:
        return False
    if not all(_plain_name(label) for label in set(labels)):
        return False
    label_of = dict(zip(ids, labels))
    types: dict[tuple[str, str], str] = {}
    for node_id, label, raw in zip(ids, labels, nodes["properties"]):
        props = _fast_props(raw, label, types, ("id", DISTRICT_COLUMN))
        if props is None:
            return False
        out.nodes.setdefault(label, []).append({"id": node_id, "props": props})
    out.label_of = label_of
    if rels is None:
        return True
    starts, ends, rtypes = rels["start"], rels["end"], rels["type"]
    if not id_set.issuperset(starts) or not id_set.issuperset(ends):
        return False  # also catches empty and null ends: ids hold neither
    if set(rels.get(DISTRICT_COLUMN) or ()) - {out.district, None}:
        return False
    if not all(_plain_name(t, label=False) for t in set(rtypes)):
        return False
    types = {}
    for start, end, rtype, raw in zip(starts, ends, rtypes, rels["properties"]):
        props = _fast_props(raw, rtype, types, (DISTRICT_COLUMN,))
        if props is None:
            return False
        out.relationships.setdefault(rtype, []).append({"start": start, "end": end, "props": props})
    return True


def _plain_name(name: Any, *, label: bool = True) -> bool:
    return isinstance(name, str) and bool(IDENTIFIER_RE.match(name)) and not (label and name == MARKER_LABEL)


def _fast_props(raw: Any, group: str, types: dict[tuple[str, str], str], drop: tuple[str, ...]) -> dict | None:
    """One properties string parsed, or None where the checked reader must look (it may still accept it)."""
    if raw is None:
        return {}
    try:
        props, end = _scan(raw, 0)
    except (StopIteration, ValueError):
        return None
    if end != len(raw) or type(props) is not dict:
        return None
    out = {}
    for key, value in props.items():
        if value is None or key in drop:
            continue
        kind = _SCALARS.get(type(value))
        if kind is None or not key or "\x00" in key or (kind == "integer" and not INT64_MIN <= value <= INT64_MAX):
            return None  # lists, odd keys, big integers: the checked reader decides
        seen = types.setdefault((group, key), kind)
        if seen != kind:
            return None
        out[key] = value
    return out


def _checked_nodes(cols: dict[str, list], out: GraphInput) -> None:
    """The reference reader of the nodes: row by row, the first bad row named."""
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
        props = _parse_props(raw, table="nodes", where=where, group=label, types=types, drop=("id", DISTRICT_COLUMN))
        out.label_of[node_id] = label
        out.nodes.setdefault(label, []).append({"id": node_id, "props": props})


def _checked_relationships(cols: dict[str, list], out: GraphInput) -> None:
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
        props = _parse_props(raw, table="relationships", where=where, group=rtype, types=types, drop=(DISTRICT_COLUMN,))
        out.relationships.setdefault(rtype, []).append({"start": start, "end": end, "props": props})
