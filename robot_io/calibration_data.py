"""A hand-eye calibration data set on disk (`calibration.yaml` + board images), loaded with clear errors and solved.

    mode: eye-to-hand                 # or eye-in-hand
    camera: {name: front, width: 1280, height: 720, fx: 910.0, fy: 910.0, cx: 640.0, cy: 360.0,
             dist: [0, 0, 0, 0, 0]}   # intrinsics: a RealSense reports them (RealSenseCamera.read().K)
    board: {squares_x: 7, squares_y: 5, square_m: 0.04, marker_m: 0.03, dictionary: DICT_5X5_100}
    T_world_base: [16 numbers]        # optional: the robot base in the world (default identity)
    robot: ur5e                       # only for samples given as joint_pos_rad (forward kinematics)
    samples:
      - {image: 000.png, T_base_tcp: [16 numbers, row-major]}
      - {image: 001.png, joint_pos_rad: [...]}

`solve_dataset` detects the board in every image, solves with `robot_io.calibration.solve_hand_eye`, and
returns the result with the camera config fields (configs/cameras format) and which images were skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from robot_io.calibration import (
    MODES,
    BoardSpec,
    CalibrationError,
    HandEyeResult,
    _cv2,
    camera_config,
    detect_board,
    solve_hand_eye,
)

DATA_FILE = "calibration.yaml"


@dataclass(frozen=True)
class Sample:
    image: Path
    T_base_tcp: np.ndarray


@dataclass(frozen=True)
class Dataset:
    mode: str
    name: str
    width: int
    height: int
    K: np.ndarray
    dist: np.ndarray
    board: BoardSpec
    T_world_base: np.ndarray
    samples: tuple[Sample, ...]


def _matrix(value: Any, where: str) -> np.ndarray:
    try:
        T = np.asarray(value, dtype=float).reshape(4, 4)
    except (TypeError, ValueError):
        raise CalibrationError(f"{where}: expected 16 numbers (a row-major 4x4 transform), got {value!r}") from None
    if not np.all(np.isfinite(T)) or not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-4) \
            or not np.allclose(T[3], [0, 0, 0, 1]):
        raise CalibrationError(f"{where}: expected a rigid transform (orthonormal rotation, last row 0 0 0 1)")
    return T


def _number(d: dict, key: str, where: str) -> float:
    if key not in d:
        raise CalibrationError(f"{where}: missing field '{key}'")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
        raise CalibrationError(f"{where}: field '{key}': expected a number, got {v!r}")
    return float(v)


def load_dataset(directory: str | Path) -> Dataset:
    """Read `<directory>/calibration.yaml`; every error names the file and the field."""
    directory = Path(directory)
    path = directory / DATA_FILE
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise CalibrationError(f"{path}: cannot read the calibration data set: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise CalibrationError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{path}: expected a mapping with mode, camera, board, samples")
    mode = data.get("mode")
    if mode not in MODES:
        raise CalibrationError(f"{path}: field 'mode': expected one of {list(MODES)}, got {mode!r}")
    cam = data.get("camera")
    if not isinstance(cam, dict):
        raise CalibrationError(f"{path}: field 'camera': expected a mapping of intrinsics, got {cam!r}")
    w = f"{path}: camera"
    fx, fy, cx, cy = (_number(cam, k, w) for k in ("fx", "fy", "cx", "cy"))
    width, height = int(_number(cam, "width", w)), int(_number(cam, "height", w))
    try:
        dist = np.asarray(cam.get("dist", [0.0] * 5), dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise CalibrationError(f"{w}: field 'dist': expected a list of numbers, got {cam.get('dist')!r}") from None
    board_d = data.get("board", {})
    if not isinstance(board_d, dict):
        raise CalibrationError(f"{path}: field 'board': expected a mapping, got {board_d!r}")
    unknown = set(board_d) - {"squares_x", "squares_y", "square_m", "marker_m", "dictionary"}
    if unknown:
        raise CalibrationError(f"{path}: board: unknown field(s) {sorted(unknown)}")
    try:
        board = BoardSpec(**board_d)
    except CalibrationError as e:
        raise CalibrationError(f"{path}: {e}") from None
    T_world_base = _matrix(data["T_world_base"], f"{path}: field 'T_world_base'") if "T_world_base" in data \
        else np.eye(4)
    raw = data.get("samples")
    if not isinstance(raw, list) or not raw:
        raise CalibrationError(f"{path}: field 'samples': expected a list of {{image, T_base_tcp | joint_pos_rad}}")
    fk = _fk(data.get("robot"), path) if any(isinstance(s, dict) and "joint_pos_rad" in s for s in raw) else None
    samples = []
    for i, s in enumerate(raw):
        where = f"{path}: samples[{i}]"
        if not isinstance(s, dict) or "image" not in s:
            raise CalibrationError(f"{where}: expected a mapping with 'image', got {s!r}")
        img = directory / str(s["image"])
        if not img.is_file():
            raise CalibrationError(f"{where}: field 'image': {img} does not exist")
        if "T_base_tcp" in s:
            T = _matrix(s["T_base_tcp"], f"{where}: field 'T_base_tcp'")
        elif "joint_pos_rad" in s:
            T = fk(np.asarray(s["joint_pos_rad"], dtype=float), where)
        else:
            raise CalibrationError(f"{where}: missing field 'T_base_tcp' (or 'joint_pos_rad' with a top-level robot)")
        samples.append(Sample(img, T))
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    return Dataset(mode, str(cam.get("name", directory.name)), width, height, K, dist, board, T_world_base,
                   tuple(samples))


def _fk(robot: Any, path: Path):
    """Forward kinematics of the named robot config (kinematics-only PyBullet twin), for joint_pos_rad samples."""
    if robot is None:
        raise CalibrationError(f"{path}: samples give joint_pos_rad, so field 'robot' (a configs/robots name) is "
                               f"needed")
    import pybullet as p

    from robot_io.driver_config import DriverConfigError, robot_spec
    from sim.scene import SceneSpec
    from sim.world import World

    try:
        spec = robot_spec(str(robot), where=f"{path}: field 'robot'")
    except DriverConfigError as e:
        raise CalibrationError(str(e)) from None
    client = p.connect(p.DIRECT)
    world = World.from_scene(client, SceneSpec(robot=spec))

    def fk(q: np.ndarray, where: str) -> np.ndarray:
        if q.shape != (spec.dof,) or not np.all(np.isfinite(q)):
            raise CalibrationError(f"{where}: field 'joint_pos_rad': expected {spec.dof} finite numbers, got "
                                   f"{q.tolist()}")
        return world.fk(q).matrix()

    return fk


def solve_dataset(ds: Dataset, method: str = "best") -> tuple[HandEyeResult, dict[str, Any], list[str]]:
    """Detect, solve, and build the camera config fields; also the list of images where no board was found."""
    cv2 = _cv2()
    poses, dets, skipped = [], [], []
    for s in ds.samples:
        img = cv2.imread(str(s.image), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise CalibrationError(f"{s.image}: not an image OpenCV can read")
        if img.shape != (ds.height, ds.width):
            raise CalibrationError(f"{s.image}: image is {img.shape[1]}x{img.shape[0]}, the camera's intrinsics are "
                                   f"for {ds.width}x{ds.height}")
        det = detect_board(img, ds.board, ds.K, ds.dist)
        if det is None:
            skipped.append(s.image.name)
            continue
        poses.append(s.T_base_tcp)
        dets.append(det)
    if len(dets) < 3:
        raise CalibrationError(f"the board was found in {len(dets)} of {len(ds.samples)} images; need at least 3 "
                               f"(check the board spec: squares, sizes, dictionary)")
    result = solve_hand_eye(poses, dets, ds.mode, ds.K, ds.dist, method)
    if ds.mode == "eye-to-hand":
        T_world_camera = ds.T_world_base @ result.T_solved
    else:
        T_world_camera = ds.T_world_base @ poses[0] @ result.T_solved
    fields = camera_config(ds.name, ds.width, ds.height, ds.K, T_world_camera)
    if ds.mode == "eye-in-hand":
        fields["T_tcp_camera"] = [round(float(v), 9) for v in result.T_solved.flatten()]
    return result, fields, skipped
