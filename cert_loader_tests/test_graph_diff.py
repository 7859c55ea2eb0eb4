"""The relationship diff of upsert and merge, without a server: what to create, update and delete, and the counts."""

from __future__ import annotations

from cert_loader.graph_diff import covers, diff_relationships, existing_by_ends, same_value

D = "d1"
LABEL_OF = {"s1": "Student", "s2": "Student", "s3": "Student", "k1": "School"}


def old(start: str, end: str, props: dict | None = None, *, end_district: str = D, end_labels: tuple = ()) -> dict:
    """One relationship as GraphCypher.existing_rels reads it (it carries its district_id property)."""
    labels = list(end_labels) or [LABEL_OF[end]]
    return {"start": start, "sl": LABEL_OF[start], "end": end, "el": labels, "ed": end_district,
            "p": {"district_id": D, **(props or {})}}


def new(start: str, end: str, props: dict | None = None) -> dict:
    return {"start": start, "end": end, "props": props or {}}


def counts(diff) -> tuple[int, int, int, int]:
    return diff.inserted, diff.updated, diff.deleted, diff.unchanged


def plain(groups) -> dict:
    """The non-empty groups, each in a fixed order (the diff walks the ends in set order)."""
    return {pair: sorted(items, key=repr) for pair, items in groups.items() if items}


def test_an_empty_graph_creates_every_source_relationship_grouped_by_end_labels() -> None:
    rows = [new("s1", "k1", {"since": 2020}), new("s2", "k1"), new("s1", "s2")]
    for exact in (False, True):
        diff = diff_relationships([], rows, LABEL_OF, D, exact=exact)
        assert counts(diff) == (3, 0, 0, 0)
        assert plain(diff.create) == {
            ("Student", "School"): [{"start": "s1", "end": "k1", "props": {"since": 2020}},
                                    {"start": "s2", "end": "k1", "props": {}}],
            ("Student", "Student"): [{"start": "s1", "end": "s2", "props": {}}],
        }
        assert not plain(diff.delete) and not plain(diff.overwrite) and not plain(diff.add)


def test_identical_relationships_are_left_alone() -> None:
    existing = [old("s1", "k1", {"since": 2020}), old("s1", "s2")]
    rows = [new("s1", "k1", {"since": 2020}), new("s1", "s2")]
    for exact in (False, True):
        diff = diff_relationships(existing, rows, LABEL_OF, D, exact=exact)
        assert counts(diff) == (0, 0, 0, 2)
        assert not any(plain(g) for g in (diff.create, diff.delete, diff.overwrite, diff.add))


def test_merge_overwrites_a_changed_one_and_upsert_sets_over_it() -> None:
    existing = [old("s1", "k1", {"since": 2020, "note": "x"})]
    rows = [new("s1", "k1", {"since": 2021})]
    merged = diff_relationships(existing, rows, LABEL_OF, D, exact=True)
    assert counts(merged) == (0, 1, 0, 0)
    assert plain(merged.overwrite) == {("Student", "School"): [{"start": "s1", "end": "k1", "props": {"since": 2021}}]}
    upserted = diff_relationships(existing, rows, LABEL_OF, D, exact=False)
    assert counts(upserted) == (0, 1, 0, 0)
    assert plain(upserted.add) == {("Student", "School"): [{"start": "s1", "end": "k1", "props": {"since": 2021}}]}
    # upsert's SET += keeps "note": a source that says less than the graph is unchanged
    covered = diff_relationships(existing, [new("s1", "k1", {"since": 2020})], LABEL_OF, D, exact=False)
    assert counts(covered) == (0, 0, 0, 1)
    exact = diff_relationships(existing, [new("s1", "k1", {"since": 2020})], LABEL_OF, D, exact=True)
    assert counts(exact) == (0, 1, 0, 0)  # merge makes the properties exactly the source's


def test_types_count_as_changes() -> None:
    existing = [old("s1", "k1", {"since": 2020})]
    for value in (2020.0, True, "2020"):
        diff = diff_relationships(existing, [new("s1", "k1", {"since": value})], LABEL_OF, D, exact=True)
        assert counts(diff) == (0, 1, 0, 0), value


def test_merge_deletes_what_the_source_lacks_and_upsert_keeps_it() -> None:
    existing = [old("s1", "k1"), old("s2", "s3"), old("s2", "s3", {"w": 1})]
    merged = diff_relationships(existing, [new("s1", "k1")], LABEL_OF, D, exact=True)
    assert counts(merged) == (0, 0, 2, 1)
    assert plain(merged.delete) == {("Student", "Student"): [{"start": "s2", "end": "s3"}]}
    upserted = diff_relationships(existing, [new("s1", "k1")], LABEL_OF, D, exact=False)
    assert counts(upserted) == (0, 0, 0, 1) and not plain(upserted.delete)


def test_parallel_relationships_match_by_their_whole_property_map() -> None:
    # s1->s2 {} in the graph; the source has {w: 1} and {w: 2} between the same ends
    existing = [old("s1", "s2")]
    rows = [new("s1", "s2", {"w": 1}), new("s1", "s2", {"w": 2})]
    merged = diff_relationships(existing, rows, LABEL_OF, D, exact=True)
    assert counts(merged) == (1, 1, 0, 0)  # one of the two takes the old one's place, one is new
    assert plain(merged.delete) == {("Student", "Student"): [{"start": "s1", "end": "s2"}]}
    assert [r["props"] for r in merged.create[("Student", "Student")]] == [{"w": 1}, {"w": 2}]
    upserted = diff_relationships(existing, rows, LABEL_OF, D, exact=False)
    assert counts(upserted) == (2, 0, 0, 0) and not plain(upserted.delete)


def test_parallel_relationships_partly_equal() -> None:
    existing = [old("s1", "s2", {"w": 1}), old("s1", "s2", {"w": 2}), old("s1", "s2", {"w": 3})]
    rows = [new("s1", "s2", {"w": 2}), new("s1", "s2", {"w": 1})]
    merged = diff_relationships(existing, rows, LABEL_OF, D, exact=True)
    # {w: 3} has no partner: the group is deleted and created again, one deletion counted
    assert counts(merged) == (0, 0, 1, 2)
    assert [r["props"] for r in merged.create[("Student", "Student")]] == [{"w": 2}, {"w": 1}]
    same = diff_relationships(existing[:2], rows, LABEL_OF, D, exact=True)
    assert counts(same) == (0, 0, 0, 2) and not plain(same.delete) and not plain(same.create)
    upserted = diff_relationships(existing, [*rows, new("s1", "s2", {"w": 9})], LABEL_OF, D, exact=False)
    assert counts(upserted) == (1, 0, 0, 2)
    assert plain(upserted.create) == {("Student", "Student"): [{"start": "s1", "end": "s2", "props": {"w": 9}}]}


def test_relationships_to_outside_the_district_are_not_the_diffs_business() -> None:
    existing = [old("s1", "k1", end_district="elsewhere"), old("s1", "k1", end_labels=("School",)),
                {**old("s1", "k1"), "el": []}]
    grouped = existing_by_ends(existing, D)
    assert grouped == {("s1", "Student", "k1", "School"): [{}]}  # and without its district_id property
    diff = diff_relationships(existing, [], LABEL_OF, D, exact=True)
    assert counts(diff) == (0, 0, 1, 0)


def test_same_value_is_typed() -> None:
    assert same_value(1, 1) and not same_value(1, 1.0) and not same_value(1, True) and not same_value(True, 1)
    assert same_value(float("nan"), float("nan")) and not same_value(float("nan"), 1.0)
    assert same_value([1, [2.0]], [1, [2.0]]) and not same_value([1, 2], [1, 2.0]) and not same_value([1], [1, 1])
    assert same_value({"a": [1]}, {"a": [1]}) and not same_value({"a": 1}, {"b": 1})


def test_covers() -> None:
    assert covers({"a": 1, "b": 2}, {"a": 1}) and covers({"a": 1}, {})
    assert not covers({"a": 1}, {"a": 1.0}) and not covers({"a": 1}, {"b": 1})
