"""Which segment is which named object: a global, best-first assignment over every object's candidate segments.

Each round, every object not yet placed is posed in the candidate segments still free (each object x segment pair
is registered at most once); the object whose best pose fits best takes its segment(s), which no other object can
then claim. A weak match thus never takes a segment another object explains better, and two objects never share
one segment, whatever order the objects are listed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Candidates = Callable[[str, set[int]], Sequence[tuple[Any, tuple[int, ...] | list[int]]]]
Estimate = Callable[[str, Any], Any]


def assign_best_first(names: Sequence[str], candidates: Candidates, estimate: Estimate, min_fitness: float,
                      good_fitness: float) -> tuple[dict[str, Any], dict[str, str]]:
    """(results, reasons). candidates(name, used) -> [(segment, segment indices)] for the segments still free;
    estimate(name, segment) -> a result with `.fitness`, or None. A result below min_fitness is returned (to be
    reported) but claims nothing; an object's candidates are tried in order until one fits at good_fitness."""
    cache: dict[tuple[str, tuple[int, ...]], Any] = {}
    pending = list(names)
    used: set[int] = set()
    results: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    while pending:
        pick = None
        for name in list(pending):
            cands = candidates(name, used)
            if not cands:
                reasons[name] = "no candidate segment left"
                pending.remove(name)
                continue
            best = None
            for segment, idx in cands:
                key = (name, tuple(sorted(idx)))
                if key not in cache:
                    cache[key] = estimate(name, segment)
                res = cache[key]
                if res is not None and (best is None or res.fitness > best[0].fitness):
                    best = (res, key[1])
                if best is not None and best[0].fitness >= good_fitness:
                    break
            if best is None:
                reasons[name] = "too few points to register"
                pending.remove(name)
            elif pick is None or best[0].fitness > pick[1].fitness:
                pick = (name, best[0], best[1])
        if pick is None:
            break
        name, res, idx = pick
        results[name] = res
        pending.remove(name)
        if res.fitness >= min_fitness:
            used.update(idx)
    return results, reasons
