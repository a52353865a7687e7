"""Names for identical instances (two objects with one model, e.g. LIBERO-Spatial's two black bowls), kept stable
from step to step: the reconstruction can only tell them apart by where they are."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re

import numpy as np

from reconstruction.estimate import EstimatedObject, Issue, SceneEstimate
from reconstruction.models import ObjectModel
from sim.geometry import Pose

log = logging.getLogger(__name__)

MAX_IDENTICAL = 6            # identical instances named by trying every assignment (6! = 720)
JUMP_M = 0.08                # a doubtful fit of an identical instance this far from its reference is not it
FIRST_SIGHT = 0.8            # ... and a fit this far from its start hint needs this confidence to be its first sighting
HAND_REACH_M = 0.15          # ... a confident one this far from it and from the hand waits for a second look


class InstanceNamer:
    """Names identical instances (two objects with the same model, e.g. LIBERO-Spatial's two black bowls), which
    the reconstruction can only tell apart by where they are, so its names for them are arbitrary and may swap
    from one step to the next.

    Each step the found instances of a group take the names whose reference lies nearest (the assignment of
    least summed distance): a name's reference is where the twin last had it (`last_seen`: the tracker's memory,
    the hand's pose for a held one), or, before it was ever seen, its start hint (the task's words: "the bowl
    between the plate and the ramekin"). Places are compared at the model's bottom centre (a model's root frame
    can lie far from its body: LIBERO's converted bowl has it 10 cm to one side). So the hint decides the names
    once, on the first observation, and tracking keeps them: a name never jumps to the other instance while both
    stay in view. Two names fitted into one instance keep the more confident fit; a doubtful fit far from its
    name's reference is taken for a fit on something else; both leave the name not found this step."""

    def __init__(self, models: dict[str, ObjectModel], start_hints: dict, low_confidence: float = 0.6) -> None:
        """low_confidence: a fit below this confidence (the reconstruction's own threshold) that lies over JUMP_M
        from its name's reference is taken for a fit on something else."""
        self.hints = dict(start_hints)
        self.low_confidence = low_confidence
        self.anchor_m = {}      # name -> its bottom centre in its own frame
        for name, m in models.items():
            lo, hi = np.asarray(m.geometry.bounds, float)
            self.anchor_m[name] = np.array([0.5 * (lo[0] + hi[0]), 0.5 * (lo[1] + hi[1]), lo[2], 1.0])
        self.min_apart_m = {n: 0.5 * float(min(np.asarray(m.geometry.bounds, float)[1, :2]
                                               - np.asarray(m.geometry.bounds, float)[0, :2]))
                            for n, m in models.items()}
        by_model: dict[tuple, list[str]] = {}
        for name, m in models.items():   # one URDF in two colours (the sim lab's red and blue blocks) is two models
            by_model.setdefault((m.urdf, m.scale, m.rgba), []).append(name)
        self.groups = [sorted(g) for g in by_model.values() if len(g) > 1]
        for g in self.groups:
            if len(g) > MAX_IDENTICAL:
                raise ValueError(f"{len(g)} identical instances {g}: at most {MAX_IDENTICAL} can be named")
        self.last_note: dict = {}
        self.confident: set[str] = set()           # names once fitted with confidence (not just a hint)
        self.pending: dict[str, np.ndarray] = {}   # name -> where its last held-back jump was fitted
        self.handled: set[str] = set()             # names the hand has held (moved from where the task said)

    def anchor(self, name: str, pose: Pose) -> np.ndarray:
        """Where `name`'s bottom centre is when its model stands at `pose`."""
        return (pose.matrix() @ self.anchor_m[name])[:3]

    def duplicates(self, found: dict[str, np.ndarray], estimate: SceneEstimate) -> list[str]:
        """Names fitted onto an instance that a more confident name of the group already took: two identical
        objects cannot stand with their bottom centres closer than half their width (the reconstruction fitted
        both names into one bowl's points)."""
        kept: list[np.ndarray] = []
        out = []
        for n in sorted(found, key=lambda n: -estimate.objects[n].confidence):
            if any(np.linalg.norm((found[n] - k)[:2]) < self.min_apart_m[n] for k in kept):
                out.append(n)
            else:
                kept.append(found[n])
        return out

    def hint_pose(self, name: str) -> Pose | None:
        """The model placed so its bottom centre is at the start hint (unturned), where the height is known."""
        hint = self.hints.get(name)
        if hint is None or not hint.z_known:
            return None
        return Pose(tuple(np.asarray(hint.xyz_m, float) - self.anchor_m[name][:3]))

    def reference(self, name: str, last_seen: dict[str, Pose]) -> tuple[np.ndarray, bool] | None:
        """Where `name` should be found (xyz, whether z counts), or None where nothing says."""
        if name in last_seen:
            return self.anchor(name, last_seen[name]), True
        hint = self.hints.get(name)
        if hint is None:
            return None
        return np.asarray(hint.xyz_m, float), bool(hint.z_known)

    def assign(self, group: list[str], found: dict[str, np.ndarray], last_seen: dict[str, Pose]) -> dict[str, str]:
        """reconstruction's name -> tracked name for the found members of a group (`found`: their positions)."""
        refs = {n: self.reference(n, last_seen) for n in group}
        if not found or all(r is None for r in refs.values()):
            return {n: n for n in found}

        def dist(src: str, dst: str) -> float:
            d = found[src] - refs[dst][0]
            return float(np.linalg.norm(d if refs[dst][1] else d[:2]))

        # A fit within JUMP_M of a name's reference, the nearest pair left, is that instance before any sum is
        # weighed: a wrong fit far from every reference (LIBERO-Spatial task 4: one on the cookie box, 0.7
        # confident) otherwise made the swap of the drawer's bowl, fitted on its hint, the cheaper sum
        locked: dict[str, str] = {}
        while True:
            pairs = [(dist(s, n), s, n) for s in found if s not in locked for n in group
                     if refs[n] is not None and n not in locked.values()]
            if not pairs or min(pairs)[0] > JUMP_M:
                break
            _, s, n = min(pairs)
            locked[s] = n
        seen = sorted(s for s in found if s not in locked)
        free = [n for n in group if n not in locked.values()]
        best, best_cost = None, np.inf
        for names in itertools.permutations(free, len(seen)):
            cost = sum(dist(src, dst) for src, dst in zip(seen, names, strict=True) if refs[dst] is not None)
            # ties (no reference at all) keep the reconstruction's own names
            if cost < best_cost - 1e-9 or (abs(cost - best_cost) <= 1e-9 and tuple(names) == tuple(seen)):
                best, best_cost = names, cost
        return {**locked, **dict(zip(seen, best, strict=True))}

    def jumped(self, name: str, xyz: np.ndarray, last_seen: dict[str, Pose], hand_xyz, hand_busy: bool = False
               ) -> bool:
        """Whether a fit at `xyz` (bottom centre) of an instance once confidently seen is a jump to hold back: over
        JUMP_M from where it was last seen, both places over HAND_REACH_M from the hand (nothing moved it; with
        `hand_busy`, its fingers closed on something, only where it was counts), and not where the last
        held-back fit of it was (seen there twice, it moved: it is taken)."""
        if name not in self.confident or name not in last_seen or hand_xyz is None:
            self.pending.pop(name, None)
            return False
        if not far_from(xyz, self.anchor(name, last_seen[name]), hand_xyz, hand_busy):
            self.pending.pop(name, None)
            return False
        again = name in self.pending and np.linalg.norm(self.pending[name] - xyz) <= JUMP_M
        self.pending[name] = xyz
        if again:
            self.pending.pop(name)
        return not again

    def known(self, name: str) -> bool:
        """Whether `name` was once fitted with confidence or held: then where the twin last had it, not its start
        hint, says where it is."""
        return name in self.confident or name in self.handled

    def off_hint(self, name: str, xyz: np.ndarray, hand_xyz, hand_busy: bool = False) -> float | None:
        """How far (cm) a fit at `xyz` (bottom centre) lies from `name`'s start hint when that is over JUMP_M, the
        hand cannot have moved it there (`by_hand`) and the hint's height is known (else None): for an object never
        seen with confidence nor held, only the hint says where it is."""
        hint = self.hints.get(name)
        if hint is None or not hint.z_known or hand_xyz is None or self.known(name):
            return None
        ref = np.asarray(hint.xyz_m, float)
        if not far_from(xyz, ref, hand_xyz, hand_busy):
            return None
        return 100 * float(np.linalg.norm(xyz - ref))

    def steady(self, estimate: SceneEstimate, last_seen: dict[str, Pose], hand_xyz, held: str | None = None,
               hand_busy: bool = False) -> SceneEstimate:
        """The estimate with the jumps of objects not in a group (rename handles those) held back: an object
        once confidently seen whose fit lies over JUMP_M from where it was last seen, both places far from the
        hand, stays there (not found this step) while the fit is doubtful, and until a confident fit is seen
        there twice (LIBERO-Spatial task 9: the ramekin's doubtful fit 35 cm off, onto the other bowl, left the
        twin's bowl and ramekin interpenetrating, and every rollout 'disturbed' them). One never seen with
        confidence nor held whose doubtful fit lies over JUMP_M from its start hint, both far from the hand, stays
        at the hint (LIBERO-Spatial task 3: the cookie box under the bowl, fitted doubtfully 65 cm off by the arm's
        base, stayed there in the twin and every candidate's arm hit it for 11 steps)."""
        if held is not None:
            self.handled.add(held)
        grouped = {n for g in self.groups for n in g}
        objects, doubts = dict(estimate.objects), []
        for name, est in estimate.objects.items():
            # the reconstruction's 'held' (fitted at the closed hand) exempts no object but the one the hand holds:
            # the plate fitted into the drawer at the hand that pinched the bowl was 'held' too
            if name in grouped or name == held or not est.found or (est.held and held is None) \
                    or name not in self.anchor_m:
                continue
            xyz = self.anchor(name, est.pose)
            if est.confidence < self.low_confidence and not self.known(name):
                hint = self.off_hint(name, xyz, hand_xyz, hand_busy)
                if hint is not None:
                    objects[name] = dataclasses.replace(est, found=False, pose=self.hint_pose(name))
                    doubts.append(Issue("low_confidence", name, (
                        f"'{name}': never seen with confidence, fitted doubtfully {hint:.0f} cm from where the task "
                        "says it starts, far from the hand; kept there")))
                continue
            if est.confidence < self.low_confidence:
                if name not in last_seen or hand_xyz is None:
                    continue
                if not far_from(xyz, self.anchor(name, last_seen[name]), hand_xyz, hand_busy, doubtful=True):
                    continue
            elif not self.jumped(name, xyz, last_seen, hand_xyz, hand_busy):
                self.confident.add(name)
                continue
            away_cm = 100 * float(np.linalg.norm(xyz - self.anchor(name, last_seen[name])))
            objects[name] = dataclasses.replace(est, found=False, pose=last_seen[name])
            doubts.append(Issue("low_confidence", name, (
                f"'{name}': fitted {away_cm:.0f} cm from where it was last seen, far from the hand; kept there")))
        if not doubts:
            return estimate
        log.info("held back: %s", "; ".join(i.message for i in doubts))
        held_back = {i.subject for i in doubts}
        issues = tuple(i for i in estimate.issues if i.subject not in held_back) + tuple(doubts)
        return dataclasses.replace(estimate, objects=objects, issues=issues)

    def rename(self, estimate: SceneEstimate, last_seen: dict[str, Pose], hand_xyz=None) -> SceneEstimate:
        """The estimate with each group's found instances under their tracked names (the others not found).
        hand_xyz: the TCP's position (None: jumps are not held back)."""
        if not self.groups:
            return estimate
        mapping: dict[str, str] = {}
        dropped: set[str] = set()    # reconstruction names fitted onto an instance another name already has
        doubts: list[Issue] = []     # tracked names whose fit jumped away (not confirmed yet)
        for group in self.groups:
            found = {n: self.anchor(n, estimate.objects[n].pose) for n in group
                     if n in estimate.objects and estimate.objects[n].found}
            for n in self.duplicates(found, estimate):
                found.pop(n)
                dropped.add(n)
            got = self.assign(group, found, last_seen)
            for src, dst in list(got.items()):
                ref = self.reference(dst, last_seen)
                # never seen with confidence, the reference is where the task says it started: a fit away from
                # it needs more than the usual confidence (LIBERO-Spatial task 4: a bowl fitted 0.61 confident
                # onto the cookie box, 21 cm from the hint, took the name, and the drawer's bowl got the other)
                need = self.low_confidence if dst in self.confident else max(self.low_confidence, FIRST_SIGHT)
                if ref is None or estimate.objects[src].confidence >= need:
                    continue
                d = found[src] - ref[0]
                if float(np.linalg.norm(d if ref[1] else d[:2])) > JUMP_M:
                    # a doubtful fit far from where this instance was (or, never seen, where the task says it
                    # started): a fit on something else, not the instance; it stays where it was
                    del got[src]
                    dropped.add(src)
            for src, dst in list(got.items()):
                if self.jumped(dst, found[src], last_seen, hand_xyz):
                    del got[src]
                    dropped.add(src)
                    away_cm = 100 * float(np.linalg.norm(found[src] - self.anchor(dst, last_seen[dst])))
                    doubts.append(Issue("low_confidence", dst, (
                        f"'{dst}': fitted {away_cm:.0f} cm from where it was last seen, far from the hand; kept "
                        "there until seen there again")))
                elif estimate.objects[src].confidence >= self.low_confidence:
                    self.confident.add(dst)
            mapping.update(got)
            # the names no found instance took stay "not found"; a reconstruction name not taken passes its
            # slot on, so every name of the group is still in the estimate once
            free_src = [n for n in group if n not in got]
            free_dst = [n for n in group if n not in got.values()]
            mapping.update(zip(free_src, free_dst, strict=True))
        swapped = {src: dst for src, dst in mapping.items() if src != dst}
        self.last_note = {"groups": self.groups, "renamed": swapped} if swapped else {}
        if doubts:
            self.last_note = {**self.last_note, "groups": self.groups, "held_back": [i.subject for i in doubts]}
        if dropped:
            self.last_note = {**self.last_note, "groups": self.groups, "duplicates_dropped": sorted(dropped)}
        if not swapped and not dropped:
            return estimate
        log.info("identical instances renamed (reconstruction's name -> tracked name): %s", swapped)
        objects: dict[str, EstimatedObject] = {}
        for name, est in estimate.objects.items():
            new = mapping.get(name, name)
            if name in dropped:
                est = dataclasses.replace(est, found=False)
            if not est.found and new in last_seen:
                est = dataclasses.replace(est, pose=last_seen[new])
            objects[new] = dataclasses.replace(est, name=new)
        issues = tuple(dataclasses.replace(i, subject=mapping.get(i.subject, i.subject),
                                           message=_swap_names(i.message, mapping)) for i in estimate.issues)
        issues += tuple(doubts)
        notes = tuple(_swap_names(n, mapping) for n in estimate.notes)
        return dataclasses.replace(estimate, objects=objects, issues=issues, notes=notes)


def far_from(xyz: np.ndarray, ref: np.ndarray, hand_xyz, hand_busy: bool = False, doubtful: bool = False) -> bool:
    """Whether a fit at `xyz` lies over JUMP_M from `ref` where the hand at `hand_xyz` cannot have moved it there
    (`by_hand`): the one test behind a held-back jump (from where it was last seen) and a doubtful first sighting
    (from its start hint)."""
    hand = np.asarray(hand_xyz, float)
    return not (np.linalg.norm(xyz - ref) <= JUMP_M or by_hand(xyz, ref, hand, hand_busy, doubtful))


def by_hand(xyz: np.ndarray, ref: np.ndarray, hand: np.ndarray, busy: bool = False, doubtful: bool = False) -> bool:
    """Whether the hand can have moved an object it does not hold from `ref` to `xyz`: one of the two places within
    HAND_REACH_M of it; with its fingers closed on something (`busy`), `ref` (it can push what it passes, not take
    it along: LIBERO-Spatial task 4, the plate 'moved' 38 cm from the table into the drawer where the hand held the
    bowl, and the twin believed it). A `doubtful` fit must also lie at the hand (what the hand pushed ends up
    beside it): the hand that had just set the bowl on the plate, still over it, did not throw the plate 49 cm onto
    the stove, where a doubtful fit put it; the twin believed it, and the bowl on the plate was not on the plate
    (LIBERO-Spatial 4@1)."""
    near_ref = np.linalg.norm(ref - hand) < HAND_REACH_M
    near_fit = np.linalg.norm(xyz - hand) < HAND_REACH_M
    if doubtful:
        return bool(near_fit and (near_ref or not busy))
    return bool(near_ref if busy else near_ref or near_fit)


def _swap_names(text: str, mapping: dict[str, str]) -> str:
    """Every quoted 'name' in a message under its new name (all at once, so a swap a<->b stays a swap)."""
    keys = sorted(mapping, key=len, reverse=True)
    if not keys:
        return text
    return re.sub("|".join(re.escape(f"'{k}'") for k in keys), lambda m: f"'{mapping[m.group(0)[1:-1]]}'", text)
