"""Foreign-key order in one place, for the plan's TablePlans and the Dagster translator's Tables alike.

Both need parents before children with ties by name, so the same catalog always gives the same order;
the plan refuses a cycle of non-deferrable FKs (it names the cycle), the translator breaks cycles the
same way every time, since Dagster needs a DAG (DESIGN.md sections 2 and 8). The functions are generic
over the items: ``key`` gives an item's identity, ``name`` its tie-breaking name.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Callable, Hashable, Iterable, Sequence, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def find_cycle(items: Sequence[T], edges: Iterable[tuple[T, T]], key: Callable[[T], Hashable]) -> list[T] | None:
    """A cycle among ``items`` along the (parent, child) ``edges``, as a path that ends where it starts, or None.

    Depth-first from each item in the given order, children in edge order: the same input always
    names the same cycle.
    """
    children: dict[Hashable, list[T]] = {key(n): [] for n in items}
    for parent, child in edges:
        children[key(parent)].append(child)
    state: dict[Hashable, int] = {}  # 1: on the current path, 2: done
    stack: list[T] = []

    def visit(node: T) -> list[T] | None:
        state[key(node)] = 1
        stack.append(node)
        for nxt in children[key(node)]:
            if state.get(key(nxt)) == 1:
                start = next(i for i, s in enumerate(stack) if key(s) == key(nxt))
                return stack[start:] + [nxt]
            if key(nxt) not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[key(node)] = 2
        return None

    for node in items:
        if key(node) not in state:
            found = visit(node)
            if found:
                return found
    return None


def topological(items: Sequence[T], edges: Iterable[tuple[T, T]], key: Callable[[T], Hashable],
                name: Callable[[T], str]) -> list[T]:
    """Parents first along the (parent, child) ``edges``; of the items ready at each step, the smallest ``name``.

    Items of a cycle are left out, so callers refuse or break cycles first.
    """
    indegree = {key(t): 0 for t in items}
    children: dict[Hashable, list[T]] = {key(t): [] for t in items}
    for parent, child in edges:
        indegree[key(child)] += 1
        children[key(parent)].append(child)
    seq = itertools.count()  # equal names keep the order they became ready in
    ready = [(name(t), next(seq), t) for t in items if indegree[key(t)] == 0]
    heapq.heapify(ready)
    out: list[T] = []
    while ready:
        node = heapq.heappop(ready)[2]
        out.append(node)
        for child in children[key(node)]:
            indegree[key(child)] -= 1
            if indegree[key(child)] == 0:
                heapq.heappush(ready, (name(child), next(seq), child))
    return out


def acyclic_parents(nodes: Iterable[K], edges: Iterable[tuple[K, K, str]]) -> tuple[dict[K, set[K]], dict[K, list[str]]]:
    """Parents per node from (child, parent, label) ``edges`` taken in the given order, as a DAG.

    An edge that would close a cycle is left out and its label recorded under its child. The caller's
    edge order decides which edge of a cycle goes: the translator puts deferrable FKs last.
    """
    parents: dict[K, set[K]] = {n: set() for n in nodes}
    dropped: dict[K, list[str]] = {}
    for child, parent, label in edges:
        if parent in parents[child]:
            continue
        if _reaches(parents, parent, child):
            dropped.setdefault(child, []).append(label)
            continue
        parents[child].add(parent)
    return parents, dropped


def _reaches(parents: dict[K, set[K]], start: K, target: K) -> bool:
    """Whether ``target`` is an ancestor of ``start`` (or ``start`` itself)."""
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == target:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(parents[node])
    return False
