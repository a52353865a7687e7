"""A contact every rollout has, staying in place included, counts against no candidate (planner.candidates)."""

from __future__ import annotations

import dataclasses

from planner.candidates import choose, evidence, standing
from sim.rollout import Contact
from tests.planner.test_mpc_loop import _rollout, _table


def _touching(cid: int, *pairs: tuple[str, str]):
    return dataclasses.replace(_rollout(cid, clean=False), contacts=tuple(Contact(a, b) for a, b in pairs))


def test_a_contact_every_rollout_has_counts_against_none():
    # LIBERO-Spatial task 4: the pinch left a finger against a part of the drawer's obstacle; every candidate,
    # staying in place included, 'collided' with it, and the one chosen among the unclean let the bowl go
    wall = ("robot:finger", "clutter_3_c4")
    rollouts = [_touching(0, wall), _touching(1, wall, ("robot:arm", "plate_1")), _touching(2, wall)]
    assert standing(rollouts) == {wall}
    assert choose(rollouts, _table({0: 5.0, 1: 9.0, 2: 4.0})) == 0
    assert evidence(rollouts[0], frozenset(), standing(rollouts)).collisions == 0
    assert evidence(rollouts[1], frozenset(), standing(rollouts)).collisions == 1
    # one rollout free of it: the contact is no standing one, and that rollout is the clean choice
    free = [*rollouts, _rollout(3)]
    assert standing(free) == frozenset()
    assert choose(free, _table({0: 9.0, 1: 9.0, 2: 9.0, 3: 2.0})) == 3
    assert standing(rollouts[:1]) == frozenset()
