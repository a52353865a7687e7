"""Collision queries on a World as it stands, without running physics: the contacts of the robot and of the held
object with anything else, and their clearance to the table and the other objects (what `sim.rollout` and
`sim.reach` judge a motion by)."""

from __future__ import annotations

import pybullet as p

from sim.rollout import ROBOT, TABLE, Contact


class CollisionQueries:
    """Mixed into `sim.world.World`, which provides the client, the body ids, `name_of` and `grasped`."""

    def contacts(self) -> list[Contact]:
        """Current contacts of the robot and of the held object with anything else."""
        out = []
        held = self.grasped()
        for c in p.getContactPoints(bodyA=self.robot_id, physicsClientId=self.client):
            other = self.name_of(c[2])
            if other in (ROBOT, held):
                continue  # the held object rests in the hand by design
            a = "robot:finger" if c[3] in self._finger_links else "robot:arm"
            out.append(Contact(a, other, float(c[8])))
        if held is not None:
            for c in p.getContactPoints(bodyA=self.body_ids[held], physicsClientId=self.client):
                other = self.name_of(c[2])
                if other != ROBOT:
                    out.append(Contact(f"held:{held}", other, float(c[8])))
        return out

    def min_clearance_m(self, max_distance_m: float = 0.2, ignore: tuple[str, ...] = ()) -> float:
        """Smallest distance from the robot (and the held object) to the table and the other objects."""
        held = self.grasped()
        movers = [self.robot_id] + ([self.body_ids[held]] if held else [])
        best = max_distance_m
        for name, body in [(TABLE, self.table_id), *self.body_ids.items()]:
            if name in ignore or name == held:
                continue
            for mover in movers:
                if mover != self.robot_id and name == TABLE:
                    continue  # a held object touching the table is placing, not a hazard
                for c in p.getClosestPoints(mover, body, max_distance_m, physicsClientId=self.client):
                    if mover == self.robot_id and name == TABLE and c[3] == -1:
                        continue  # the base stands on the table
                    best = min(best, float(c[8]))
        return best
