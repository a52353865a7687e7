"""Which objects a gripper presses on from between its fingers (the contact half of the held-object rule).

Two finger links touching one object is not a grasp: closed fingers pressed with their outer faces against a
box's side touch it with both links and hold nothing, on hardware as in the lab. A contact counts only when it
is on the inside of the hand: the object pushes the finger outwards along the closing axis within the contact's
friction cone (PyBullet's combined friction: the finger's times the object's), so the squeeze does not push the
object out. An object is squeezed when such contacts sit on both sides of the approach axis.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pybullet as p

from sim.geometry import Pose

MAX_CONE_DEG = 60.0     # the widest friction cone counted, whatever the friction coefficients say
MIN_OFF_AXIS_M = 5e-4                               # a contact this close to the approach axis has no side


def squeezed_bodies(client: int, robot_id: int, finger_links: Iterable[int], T_world_tcp: Pose,
                    exclude: Iterable[int] = ()) -> set[int]:
    """Bodies that finger links press on from between the fingers, on two opposite sides of the approach axis.

    T_world_tcp: the TCP pose (its z axis is the approach). `exclude`: bodies never counted (the table).
    """
    links = sorted(set(finger_links))
    skip = set(exclude)
    z = T_world_tcp.rotation()[:, 2]
    axis = _closing_axis(client, robot_id, links, z)
    if axis is None:
        return set()
    origin = T_world_tcp.position
    sides: dict[int, set[int]] = {}
    for c in p.getContactPoints(bodyA=robot_id, physicsClientId=client):
        body, link = c[2], c[3]
        if link not in links or body in skip or body == robot_id:
            continue
        mu = p.getDynamicsInfo(robot_id, link, physicsClientId=client)[1] * \
            p.getDynamicsInfo(body, c[4], physicsClientId=client)[1]
        cone_cos = float(np.cos(min(np.arctan(mu), np.radians(MAX_CONE_DEG))))
        along = float((np.asarray(c[5]) - origin) @ axis)
        if abs(along) < MIN_OFF_AXIS_M:
            continue
        side = 1 if along > 0 else -1
        normal_to_finger = np.asarray(c[7])     # PyBullet: the normal on B points towards A (the finger)
        if float(normal_to_finger @ axis) * side >= cone_cos:
            sides.setdefault(body, set()).add(side)
    return {body for body, s in sides.items() if len(s) == 2}


def finger_lever_m(client: int, robot_id: int, finger_links: Iterable[int], tcp_xyz, max_width_m: float) -> float:
    """How far the fingers reach from the TCP: the farthest finger link origin, at least half the opening."""
    tcp = np.asarray(tcp_xyz, dtype=float)
    reach = [float(np.linalg.norm(np.asarray(p.getLinkState(robot_id, j, computeForwardKinematics=True,
                                                             physicsClientId=client)[4]) - tcp)) for j in finger_links]
    return max([0.5 * max_width_m, *reach])


def _closing_axis(client: int, robot_id: int, links: list[int], z: np.ndarray) -> np.ndarray | None:
    """The horizontal (in the TCP frame) direction between the two finger links farthest apart."""
    pos = [np.asarray(p.getLinkState(robot_id, j, computeForwardKinematics=True, physicsClientId=client)[4])
           for j in links]
    best, axis = 1e-4, None
    for i in range(len(pos)):
        for k in range(i + 1, len(pos)):
            v = pos[k] - pos[i]
            v = v - (v @ z) * z
            n = float(np.linalg.norm(v))
            if n > best:
                best, axis = n, v / n
    return axis
