"""Which objects a gripper presses on from between its fingers (the contact half of the held-object rule).

Two finger links touching one object is not a grasp: closed fingers pressed with their outer faces against a
box's side touch it with both links and hold nothing, on hardware as in the lab. A contact counts only when it
is on the inside of the hand: the object pushes the finger outwards, away from the TCP's approach axis. An
object is squeezed when such contacts sit on two opposite sides of that axis.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pybullet as p

from sim.geometry import Pose

INNER_CONE_COS = float(np.cos(np.radians(50.0)))   # contact normal this close to "outwards" presses the finger open
MIN_OFF_AXIS_M = 5e-4                               # a contact this close to the approach axis has no side


def squeezed_bodies(client: int, robot_id: int, finger_links: Iterable[int], T_world_tcp: Pose,
                    exclude: Iterable[int] = ()) -> set[int]:
    """Bodies that finger links press on from between the fingers, on two opposite sides of the approach axis.

    T_world_tcp: the TCP pose (its z axis is the approach). `exclude`: bodies never counted (the table).
    """
    links = set(finger_links)
    skip = set(exclude)
    z = T_world_tcp.rotation()[:, 2]
    origin = T_world_tcp.position
    sides: dict[int, list[np.ndarray]] = {}
    for c in p.getContactPoints(bodyA=robot_id, physicsClientId=client):
        body, link = c[2], c[3]
        if link not in links or body in skip or body == robot_id:
            continue
        off = np.asarray(c[5]) - origin
        off = off - (off @ z) * z
        dist = float(np.linalg.norm(off))
        if dist < MIN_OFF_AXIS_M:
            continue
        side = off / dist
        normal_to_finger = np.asarray(c[7])     # PyBullet: the normal on B points towards A (the finger)
        if float(normal_to_finger @ side) >= INNER_CONE_COS:
            sides.setdefault(body, []).append(side)
    return {body for body, s in sides.items() if _opposite(s)}


def _opposite(sides: list[np.ndarray]) -> bool:
    """Some two of these unit directions point to opposite sides (more than 120 degrees apart)."""
    S = np.asarray(sides)
    return bool(len(S) >= 2 and np.min(S @ S.T) < -0.5)
