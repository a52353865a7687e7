"""The one held-object rule: when a gripper holds an object, for the lab, the twin and the planner's tracker.

Two views of the same rule. In a PyBullet world (the lab's truth and the planner's twin) a closing gripper whose
fingers both press on one object from between them (`sim/finger_contacts.py`), at least `HELD_MIN_WIDTH_M` apart,
with the TCP deep enough below its top, holds it (`World` applies it every physics step through
`holds_by_contact`). From an observation (the planner, which sees only joint state and cameras) a
closed gripper that stopped on something holds the found object nearest the TCP, carried rigidly in the hand
until the cameras see it elsewhere (`track_held`). The thresholds below are shared by both.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from sim.geometry import Pose

GRIPPER_OPEN_FRACTION = 0.95  # wider than this fraction of the maximum counts as open (a cube held across
                              # its diagonal leaves the fingers at ~88%); open fingers squeeze nothing
GRASP_DEPTH_M = 0.01          # the TCP must be this far below an object's top for the fingers to hold it
RELEASE_OPENING_M = 0.004     # a held object is let go once the commanded width exceeds the actual by this
CLOSING_M = 0.002             # the fingers are closing when the commanded width is this far below the actual
HELD_MIN_WIDTH_M = 0.008      # a closed gripper wider than this has something between its fingers
HELD_MAX_DIST_M = 0.05        # a found object this close to a closed gripper's TCP is taken as held
HELD_SLIP_M = 0.03            # a held object seen farther than this from its place in the hand is not held
GRASP_WIDTH_SLACK_M = 0.015   # fingers may stop this much wider than the object (they close on its corners)


def gripper_closed(width_m: float, max_width_m: float) -> bool:
    """Whether a gripper at this width counts as closed (anything narrower than nearly fully open)."""
    return width_m < GRIPPER_OPEN_FRACTION * max_width_m


def may_hold(width_m: float, max_width_m: float) -> bool:
    """A closed gripper that stopped on something (not fully shut) may hold an object."""
    return gripper_closed(width_m, max_width_m) and width_m > HELD_MIN_WIDTH_M


def closing(width_m: float, target_width_m: float) -> bool:
    """The fingers are commanded narrower than they are: closing on something, or about to."""
    return target_width_m < width_m - CLOSING_M


def holds_by_contact(width_m: float, target_width_m: float, max_width_m: float, finger_links_touching: int,
                     tcp_z_m: float, object_top_z_m: float) -> bool:
    """The physics rule: a closing gripper, not wide open, both fingers on the object, deep enough.

    "Deep enough" keeps fingertips that merely pinch a top edge from counting: such grasps slip on real
    hardware, and in the lab's physics too. Wide-open fingers (e.g. jammed against a tilted object) squeeze
    nothing.
    """
    if not closing(width_m, target_width_m) or not gripper_closed(width_m, max_width_m):
        return False
    return finger_links_touching >= 2 and object_top_z_m > tcp_z_m + GRASP_DEPTH_M


def releases(width_m: float, target_width_m: float) -> bool:
    """An opening gripper (commanded wider than it is) lets go of what it holds."""
    return target_width_m > width_m + RELEASE_OPENING_M


def grasp_width_plausible(width_m: float, object_width_m: float, max_width_m: float) -> bool:
    """Fingers that closed on an object this wide stopped where they should: neither through it nor open."""
    upper = min(object_width_m + GRASP_WIDTH_SLACK_M, GRIPPER_OPEN_FRACTION * max_width_m)
    return 0.5 * object_width_m <= width_m <= upper


@dataclass(frozen=True)
class Held:
    """The object the hand holds and where it sits in the hand (TCP frame)."""

    name: str
    T_tcp_obj: Pose

    def pose(self, T_world_tcp: Pose) -> Pose:
        return T_world_tcp @ self.T_tcp_obj


@dataclass(frozen=True)
class ExpectedHold:
    """What the twin's rollout of the executed step left in the hand: the object, its place in the hand and the
    gripper width at which the twin's fingers stopped on it."""

    held: Held
    width_m: float


def track_held(held: Held | None, width_m: float, max_width_m: float, T_world_tcp: Pose,
               seen: Mapping[str, Pose], expected: ExpectedHold | None = None,
               doubtful: Collection[str] = ()) -> tuple[Held | None, str]:
    """The observation's view of the rule: what the hand holds now, given what it held before.

    seen: the found objects' poses this step; doubtful: those of them fitted with low confidence. A newly closed
    gripper takes what the executed step's rollout left in the hand (`expected`) if its fingers stopped at the
    width the twin's did and the cameras do not confidently see that object away from the hand (a flat box under
    the hand is hidden from every camera), where they see it if they do (near the TCP, or where the rollout left
    it); otherwise the nearest found object within HELD_MAX_DIST_M of the
    TCP, where it is. A held object stays held, carried rigidly, unless the cameras confidently see it more than
    HELD_SLIP_M from where the hand would carry it. Returns (held or None, why it was dropped: '' unless a held
    object was seen elsewhere).
    """
    if not may_hold(width_m, max_width_m):
        return None, ""
    confident = {name: pose for name, pose in seen.items() if name not in doubtful}

    def dist_m(pose: Pose) -> float:
        return float(np.linalg.norm(pose.position - T_world_tcp.position))

    if held is None:
        if expected is not None and abs(width_m - expected.width_m) <= GRASP_WIDTH_SLACK_M:
            name = expected.held.name
            if name not in confident:
                return expected.held, ""
            off_m = float(np.linalg.norm(confident[name].position - expected.held.pose(T_world_tcp).position))
            # seen where the rollout left it in the hand: a rim pinch holds a 112 mm bowl 55 mm from its centre
            if dist_m(confident[name]) < HELD_MAX_DIST_M or off_m <= HELD_SLIP_M:
                return Held(name, T_world_tcp.inverse() @ confident[name]), ""
        near = [(dist_m(pose), name) for name, pose in seen.items()]
        near = [x for x in near if x[0] < HELD_MAX_DIST_M]
        if not near:
            return None, ""
        name = min(near)[1]
        return Held(name, T_world_tcp.inverse() @ seen[name]), ""
    in_hand = held.pose(T_world_tcp)
    if held.name in confident:
        off = float(np.linalg.norm(confident[held.name].position - in_hand.position))
        if off > HELD_SLIP_M:
            return None, f"{held.name} is seen {1000 * off:.0f} mm from where the hand would carry it: not held"
    return held, ""
