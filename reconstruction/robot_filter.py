"""Remove the robot's own pixels: render the arm at its measured joint state and compare depths.

A private PyBullet client holds only the robot. For each camera, pixels whose observed depth lies at or
behind the rendered robot surface (within a tolerance) belong to the robot or are hidden by it; pixels
clearly in front of the robot (e.g. a held object, seen in front of the fingers) are kept.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import xml.etree.ElementTree as ET

import numpy as np
import pybullet as p
from scipy import ndimage

from sim.camera import CameraSpec, load_fast_renderer, render_rgbd
from sim.scene import RobotSpec

log = logging.getLogger(__name__)


def collision_proxy_urdf(urdf: str, out_dir: str) -> str:
    """A copy of the URDF whose visuals are its collision shapes, with mesh paths made absolute.

    Collision meshes have ~100x fewer triangles than the Panda's visual ones (rendering drops from ~40 to
    ~15 ms a camera) and enclose the visual surface, so the mask errs on the side of removing robot points.
    """
    tree = ET.parse(urdf)
    root = tree.getroot()
    base = os.path.dirname(os.path.abspath(urdf))
    for mesh in root.iter("mesh"):
        name = mesh.get("filename", "")
        for prefix in ("package://", "file://"):
            if name.startswith(prefix):
                name = name[len(prefix):]
        mesh.set("filename", name if os.path.isabs(name) else os.path.normpath(os.path.join(base, name)))
    for link in root.findall("link"):
        collisions = link.findall("collision")
        if not collisions:
            continue
        for visual in link.findall("visual"):
            link.remove(visual)
        for col in collisions:
            visual = ET.SubElement(link, "visual")
            for child in col:
                if child.tag in ("origin", "geometry"):
                    visual.append(copy.deepcopy(child))
    path = os.path.join(out_dir, "robot_proxy.urdf")
    tree.write(path)
    return path


class RobotFilter:
    """Robot-pixel masks for observed frames. Owns (and closes) its client unless one is passed in.

    A client passed in must be empty: the EGL renderer only sees bodies created after it is loaded.
    proxy="collision" renders the collision shapes (fast, slightly larger); "visual" the exact visual meshes.
    renderer="tiny" (default) uses TinyRenderer: with the collision proxy it takes ~15 ms a 480x360 camera,
    and it coexists with other clients. renderer="egl" calls sim.camera.load_fast_renderer on this client;
    the EGL plugin holds one scene per process, so it breaks any other EGL client in the same process.
    """

    def __init__(self, robot: RobotSpec, client: int | None = None, depth_tol_m: float = 0.015,
                 dilate_px: int = 2, near_m: float = 0.05, far_m: float = 3.0, proxy: str = "collision",
                 renderer: str = "tiny", downscale: int = 1) -> None:
        if proxy not in ("collision", "visual"):
            raise ValueError(f"RobotFilter proxy {proxy!r}: expected 'collision' or 'visual'")
        if renderer not in ("tiny", "egl"):
            raise ValueError(f"RobotFilter renderer {renderer!r}: expected 'tiny' or 'egl'")
        self.robot = robot
        self.depth_tol_m = float(depth_tol_m)
        self.dilate_px = int(dilate_px)
        self.downscale = max(1, int(downscale))
        self.near_m, self.far_m = float(near_m), float(far_m)
        self._owns_client = client is None
        self.client = p.connect(p.DIRECT) if client is None else int(client)
        try:
            if p.getNumBodies(physicsClientId=self.client) != 0:
                raise ValueError("RobotFilter needs an empty PyBullet client (the renderer only sees later bodies)")
            self.renderer = load_fast_renderer(self.client) if renderer == "egl" else p.ER_TINY_RENDERER
            with tempfile.TemporaryDirectory(prefix="robot_filter_") as tmp:
                # PyBullet reads every mesh at load time, so the proxy file is not needed afterwards.
                urdf = collision_proxy_urdf(robot.urdf, tmp) if proxy == "collision" else robot.urdf
                self.robot_id = p.loadURDF(urdf, robot.base_pose.xyz, robot.base_pose.quat_xyzw,
                                           useFixedBase=True, physicsClientId=self.client)
            joints = {}
            for j in range(p.getNumJoints(self.robot_id, physicsClientId=self.client)):
                info = p.getJointInfo(self.robot_id, j, physicsClientId=self.client)
                joints[info[1].decode()] = j
            missing = [n for n in (*robot.arm_joints, *robot.finger_joints) if n not in joints]
            if missing:
                raise ValueError(f"robot '{robot.name}': joints {missing} are not in {robot.urdf}")
            self._arm_idx = [joints[n] for n in robot.arm_joints]
            self._finger_idx = [joints[n] for n in robot.finger_joints]
        except Exception:
            self.close()
            raise
        self._cams: dict[tuple, CameraSpec] = {}

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        if self._owns_client and self.client is not None and p.isConnected(physicsClientId=self.client):
            p.disconnect(physicsClientId=self.client)
        self.client = None

    def __enter__(self) -> RobotFilter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ state
    def set_state(self, joint_pos_rad, gripper_width_m: float) -> None:
        q = np.asarray(joint_pos_rad, dtype=float).reshape(-1)
        if q.shape != (len(self._arm_idx),):
            raise ValueError(f"expected {len(self._arm_idx)} joint positions, got shape {q.shape}")
        for j, v in zip(self._arm_idx, q):
            p.resetJointState(self.robot_id, j, float(v), physicsClientId=self.client)
        closed = np.asarray(self.robot.finger_closed_pos)
        opened = np.asarray(self.robot.finger_open_pos)
        frac = float(np.clip(gripper_width_m / self.robot.gripper_max_width_m, 0.0, 1.0))
        for j, v in zip(self._finger_idx, closed + frac * (opened - closed)):
            p.resetJointState(self.robot_id, j, float(v), physicsClientId=self.client)

    def camera_for(self, name: str, width: int, height: int, K: np.ndarray, T_world_camera: np.ndarray) -> CameraSpec:
        key = (name, width, height, np.asarray(K, dtype=float).tobytes(),
               np.asarray(T_world_camera, dtype=float).tobytes())
        cam = self._cams.get(key)
        if cam is None:
            K = np.asarray(K, dtype=float)
            cam = CameraSpec(name, int(width), int(height), K[0, 0], K[1, 1], K[0, 2], K[1, 2],
                             tuple(np.asarray(T_world_camera, dtype=float).flatten()), near_m=self.near_m,
                             far_m=self.far_m)
            if len(self._cams) > 32:
                self._cams.clear()
            self._cams[key] = cam
        return cam

    def robot_depth(self, cam: CameraSpec) -> np.ndarray:
        """Rendered depth of the robot alone (NaN where the robot is not in view)."""
        return render_rgbd(self.client, cam, renderer=self.renderer, segmentation=False).depth_m

    def mask(self, depth_m: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray, name: str = "cam") -> np.ndarray:
        """Boolean (H, W): True where the pixel shows the robot or something the robot hides."""
        H, W = depth_m.shape
        s = self.downscale
        if s > 1:
            # Render at 1/s resolution (TinyRenderer's cost is per pixel) and repeat each pixel s x s.
            K = np.asarray(K, dtype=float).copy()
            K[:2, :2] /= s
            K[:2, 2] = (K[:2, 2] + 0.5) / s - 0.5
            h, w = -(-H // s), -(-W // s)
            low = self.robot_depth(self.camera_for(name, w, h, K, T_world_camera))
            robot = np.repeat(np.repeat(low, s, axis=0), s, axis=1)[:H, :W]
        else:
            robot = self.robot_depth(self.camera_for(name, W, H, K, T_world_camera))
        robot = np.where(np.isfinite(robot), robot, np.inf).astype(np.float32)
        if self.dilate_px > 0:
            # Nearest robot depth in a small window: silhouette pixels (mixed or slightly misregistered)
            # count as robot too.
            robot = ndimage.minimum_filter(robot, size=2 * self.dilate_px + 1, mode="nearest")
        with np.errstate(invalid="ignore"):
            return np.isfinite(robot) & (np.isnan(depth_m) | (depth_m >= robot - self.depth_tol_m))

    def masks(self, frames, joint_pos_rad, gripper_width_m: float) -> list[np.ndarray]:
        """Each frame's robot mask (see mask) with the arm at the given state."""
        self.set_state(joint_pos_rad, gripper_width_m)
        return [self.mask(np.asarray(f.depth_m, dtype=np.float32), f.K, f.T_world_camera, f.name) for f in frames]

    def masked_depths(self, frames, joint_pos_rad, gripper_width_m: float) -> list[np.ndarray]:
        """Each frame's depth with robot pixels set to NaN."""
        out = []
        for f, m in zip(frames, self.masks(frames, joint_pos_rad, gripper_width_m)):
            depth = np.array(f.depth_m, dtype=np.float32, copy=True)
            depth[m] = np.nan
            out.append(depth)
        return out
