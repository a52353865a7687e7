"""Test scenes for reconstruction: a true world in PyBullet, rendered by the lab cameras into an Observation.

The truth (object poses) is only read back to score the estimate; the Reconstructor sees the Observation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import yaml

from reconstruction.models import ObjectModel
from robot_io.observation import CameraFrame, Observation
from sim.camera import CameraSpec, render_rgbd
from sim.geometry import Pose, rotation_error_deg
from sim.scene import ObjectSpec, RobotSpec, SceneSpec, resolve_asset_path
from sim.world import World

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NEUTRAL_RGBA = ((0.5, 0.5, 0.5, 1.0), (0.45, 0.32, 0.2, 1.0), (0.45, 0.45, 0.2, 1.0), (0.85, 0.85, 0.82, 1.0),
                (0.3, 0.3, 0.3, 1.0))
# random_urdfs whose meshes are a few centimetres across and rest stably on the table
CLUTTER_IDS = (0, 3, 6, 9, 17, 21, 45, 67, 101, 134, 200, 233)


def catalog() -> dict:
    with open(os.path.join(REPO, "configs", "objects.yaml")) as f:
        return yaml.safe_load(f)


def lab_cameras() -> list[CameraSpec]:
    cams = []
    for name in ("front", "left", "right"):
        with open(os.path.join(REPO, "configs", "cameras", f"{name}.yaml")) as f:
            cams.append(CameraSpec.from_dict(yaml.safe_load(f), name))
    return cams


def robot_spec() -> RobotSpec:
    return RobotSpec.from_yaml(os.path.join(REPO, "configs", "robots", "panda.yaml"))


def named_object(name: str, asset: str, xyz, yaw_deg: float, cat: dict | None = None) -> ObjectSpec:
    """The lab's truth for a catalog object (its own physics: the test plays the lab)."""
    entry = (cat or catalog())[asset]
    return ObjectSpec(name, Pose.from_xyz_rpy_deg(xyz, (0.0, 0.0, yaw_deg)), urdf=resolve_asset_path(entry["urdf"]),
                      scale=float(entry.get("scale", 1.0)), rgba=tuple(entry["rgba"]),
                      symmetry=entry.get("symmetry", "none"), fixed=bool(entry.get("fixed", False)),
                      mass_kg=0.12, friction=0.6)


def clutter_object(name: str, idx: int, xyz, yaw_deg: float, rgba) -> ObjectSpec:
    urdf = resolve_asset_path(f"pybullet_data:random_urdfs/{idx:03d}/{idx:03d}.urdf")
    return ObjectSpec(name, Pose.from_xyz_rpy_deg(xyz, (0.0, 0.0, yaw_deg)), urdf=urdf, rgba=tuple(rgba))


def touching_pair_scene(robot: RobotSpec, a: tuple[str, str], b: tuple[str, str], yaw_deg: float,
                        clutter_xyz=(0.45, -0.2, 0.04), cat: dict | None = None) -> SceneSpec:
    """Two catalog blocks side by side and touching (5.05 cm apart along their common yaw, from (0.5, 0)), plus one
    clutter object: a = (name, asset), b = (name, asset)."""
    cat = cat or catalog()
    step = 0.0505 * np.array([np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))])
    return SceneSpec(robot, (
        named_object(a[0], a[1], (0.5, 0.0, 0.0251), yaw_deg, cat),
        named_object(b[0], b[1], (0.5 + step[0], step[1], 0.0251), yaw_deg, cat),
        clutter_object("c0", 45, clutter_xyz, 0, NEUTRAL_RGBA[1])))


def models_for(assets: dict[str, str], cat: dict | None = None) -> dict[str, ObjectModel]:
    """object name -> asset key  =>  models (geometry and physics priors) as the planner would build them."""
    cat = cat or catalog()
    return {name: ObjectModel.from_catalog(name, cat[key]) for name, key in assets.items()}


def random_scene(rng: np.random.Generator, robot: RobotSpec, blocks=("block_red", "block_blue"),
                 tray: bool = False, n_clutter: int = 3) -> tuple[SceneSpec, dict[str, str]]:
    """Blocks at random yaw, optionally the tray, and neutral clutter, not overlapping, in front of the robot."""
    cat = catalog()
    placed: list[tuple[np.ndarray, float]] = []   # (xy, radius)

    def place(radius: float, lo=(0.32, -0.32), hi=(0.7, 0.32)) -> np.ndarray:
        for _ in range(2000):
            xy = rng.uniform(lo, hi)
            if all(np.linalg.norm(xy - q) > radius + r + 0.015 for q, r in placed):
                placed.append((xy, radius))
                return xy
        raise RuntimeError("could not place an object")

    objects, assets = [], {}
    if tray:
        xy = place(0.2, (0.45, -0.1), (0.55, 0.1))
        objects.append(named_object("tray", "tray", (*xy, 0.0), float(rng.uniform(0, 90)), cat))
        assets["tray"] = "tray"
    for asset in blocks:
        name = asset.replace("block_", "") + "_block"
        xy = place(0.04)
        objects.append(named_object(name, asset, (*xy, 0.0251), float(rng.uniform(-180, 180)), cat))
        assets[name] = asset
    for k in range(n_clutter):
        xy = place(0.045)
        idx = int(rng.choice(CLUTTER_IDS))
        rgba = NEUTRAL_RGBA[int(rng.integers(len(NEUTRAL_RGBA)))]
        objects.append(clutter_object(f"c{k}", idx, (*xy, 0.04), float(rng.uniform(-180, 180)), rgba))
    return SceneSpec(robot=robot, objects=tuple(objects)), assets


def settle(world: World, seconds: float = 0.6) -> None:
    world.step(int(seconds * 240))


def observe(world: World, cameras, rng: np.random.Generator, stamp_s: float = 0.0) -> Observation:
    frames = []
    for cam in cameras:
        rgbd = render_rgbd(world.client, cam, rng, renderer=world.renderer)
        frames.append(CameraFrame(cam.name, rgbd.rgb, rgbd.depth_m, cam.K, cam.T_world_camera_matrix))
    return Observation(tuple(frames), world.joint_pos_rad(), world.gripper_width_m(), world.tcp_pose().matrix(),
                       stamp_s)


@dataclass(frozen=True, eq=False)
class Shot:
    """One observation of a true scene, with the truth kept aside for scoring."""

    obs: Observation
    truth: dict[str, Pose]
    seg: tuple[np.ndarray, ...]          # per camera body ids (scoring the robot mask)
    robot_id: int
    table_id: int


def shoot(scene: SceneSpec, cameras, seed: int = 0, settle_s: float = 0.6) -> Shot:
    """Build the true world (EGL renderer), let it settle, render the cameras with noise, and close it again.

    The world is disconnected before returning: the EGL plugin serves one client per process, so no EGL
    client may outlive the test that made it.
    """
    import pybullet as p

    client = p.connect(p.DIRECT)
    try:
        world = World.from_scene(client, scene, fast_render=True)
        settle(world, settle_s)
        rng = np.random.default_rng(seed)
        frames, segs = [], []
        for cam in cameras:
            rgbd = render_rgbd(client, cam, rng, renderer=world.renderer)
            frames.append(CameraFrame(cam.name, rgbd.rgb, rgbd.depth_m, cam.K, cam.T_world_camera_matrix))
            segs.append(rgbd.seg)
        obs = Observation(tuple(frames), world.joint_pos_rad(), world.gripper_width_m(), world.tcp_pose().matrix(),
                          0.0)
        return Shot(obs, world.object_poses(), tuple(segs), world.robot_id, world.table_id)
    finally:
        p.disconnect(client)


def arm_pose_for(robot: RobotSpec, tcp: Pose) -> np.ndarray:
    """Joint positions that put the TCP at `tcp` (IK in a scratch world with the robot only)."""
    import pybullet as p

    client = p.connect(p.DIRECT)
    try:
        world = World.from_scene(client, SceneSpec(robot, ()))
        q, err = world.ik(tcp)
        if err > 0.005:
            raise RuntimeError(f"IK did not reach {tcp} (error {err * 1000:.1f} mm)")
        return q
    finally:
        p.disconnect(client)


def pose_errors(est: Pose, truth: Pose, symmetry: str) -> tuple[float, float]:
    """(translation error m, symmetry-aware rotation error deg)."""
    return (float(np.linalg.norm(est.position - truth.position)),
            rotation_error_deg(est.rotation(), truth.rotation(), symmetry))
