"""Which segment is which named object: a global, best-first assignment over every object's candidate segments.

Each round, every object not yet placed is posed in the candidate segments still free (each object x segment pair
is registered at most once); the object whose best pose fits best takes its segment(s), which no other object can
then claim. A weak match thus never takes a segment another object explains better, and two objects never share
one segment, whatever order the objects are listed in.

"Fits best" is the result's fitness, or a rank the caller gives (rank(name, result)): the reconstructor ranks a
textured model's fitness by how well its print matches the segment's colours (appearance.look_match), so two
look-alike packages that the shape cannot tell apart take the segments their prints match. Whether an object is
found at all (min_fitness) is still decided by the fitness alone. Best-first is greedy, so afterwards two objects
exchange their segments where that ranks higher in sum (a look-alike that took the other's segment by a hair).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Candidates = Callable[[str, set[int]], Sequence[tuple[Any, tuple[int, ...] | list[int]]]]
Estimate = Callable[[str, Any], Any]
Rank = Callable[[str, Any], float]


def _fitness(name: str, result: Any) -> float:
    return float(result.fitness)


def assign_best_first(names: Sequence[str], candidates: Candidates, estimate: Estimate, min_fitness: float,
                      good_fitness: float, rank: Rank | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """(results, reasons). candidates(name, used) -> [(segment, segment indices)] for the segments still free;
    estimate(name, segment) -> a result with `.fitness`, or None; rank(name, result) -> how well it fits (default:
    its fitness; computed once per object x segment). A result below min_fitness is returned (to be reported) but
    claims nothing; an object's candidates are tried in order until one ranks at good_fitness."""
    rank = rank or _fitness
    cache: dict[tuple[str, tuple[int, ...]], Any] = {}
    ranks: dict[tuple[str, tuple[int, ...]], float] = {}
    pending = list(names)
    used: set[int] = set()
    claimed: dict[str, tuple[int, ...]] = {}
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
                    ranks[key] = rank(name, cache[key]) if cache[key] is not None else 0.0
                res = cache[key]
                if res is not None and (best is None or ranks[key] > best[2]):
                    best = (res, key[1], ranks[key])
                if best is not None and best[2] >= good_fitness:
                    break
            if best is None:
                reasons[name] = "too few points to register"
                pending.remove(name)
            elif pick is None or best[2] > pick[3]:
                pick = (name, best[0], best[1], best[2])
        if pick is None:
            break
        name, res, idx, _ = pick
        results[name] = res
        pending.remove(name)
        if res.fitness >= min_fitness:
            used.update(idx)
            claimed[name] = idx
    _swap_pairs(results, claimed, cache, ranks, min_fitness)
    return results, reasons


def _swap_pairs(results: dict[str, Any], claimed: dict[str, tuple[int, ...]], cache: dict, ranks: dict,
                min_fitness: float) -> None:
    """Best-first is greedy: a look-alike can take another's segment by a hair and leave it only a poor match.
    Two objects exchange their segments when both were tried in the other's and the exchange ranks higher in
    sum (only pairs already registered: no new registration)."""
    improved = True
    while improved:
        improved = False
        names = sorted(claimed)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                ka, kb = (a, claimed[a]), (b, claimed[b])
                ab, ba = (a, claimed[b]), (b, claimed[a])
                if cache.get(ab) is None or cache.get(ba) is None:
                    continue
                if cache[ab].fitness < min_fitness or cache[ba].fitness < min_fitness:
                    continue
                if ranks[ab] + ranks[ba] > ranks[ka] + ranks[kb] + 1e-9:
                    results[a], results[b] = cache[ab], cache[ba]
                    claimed[a], claimed[b] = claimed[b], claimed[a]
                    improved = True
