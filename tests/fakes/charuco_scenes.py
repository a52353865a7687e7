"""Synthetic hand-eye calibration data with known extrinsics: ChArUco board images rendered by a pinhole projection
of the board texture (OpenCV's own `generateImage`, warped with `cv2.warpPerspective` at 2x and area-downsampled,
plus pixel noise), and TCP poses consistent with a known camera mount.

Eye-to-hand: camera fixed at T_base_camera, board on the flange at T_tcp_board. Eye-in-hand: camera on the flange
at T_tcp_camera, board fixed at T_base_board. Each sample picks a board pose in front of the camera (0.45-0.8 m,
tilted up to ~30 degrees about a random axis), renders it, and derives the TCP pose that puts it there.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from robot_io.calibration import BoardSpec, board_image

BOARD = BoardSpec(squares_x=7, squares_y=5, square_m=0.04, marker_m=0.03, dictionary="DICT_5X5_100")
WIDTH, HEIGHT = 1280, 720
K = np.array([[910.0, 0.0, 639.5], [0.0, 910.0, 359.5], [0.0, 0.0, 1.0]])   # a D435's colour camera at 720p


def pose(xyz, rotvec) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = xyz
    return T


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """T_base_camera for an OpenCV camera (z forward, y down) at `eye` looking at `target`."""
    eye, target, up = (np.asarray(v, float) for v in (eye, target, up))
    z = (target - eye) / np.linalg.norm(target - eye)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, np.cross(z, x), z, eye
    return T


def render(T_camera_board: np.ndarray, rng: np.random.Generator, noise_std: float = 2.0, supersample: int = 2,
           board: BoardSpec = BOARD) -> np.ndarray:
    """Grey uint8 image of the board at T_camera_board seen by the pinhole camera K (no distortion)."""
    px_per_m, margin_px = 6000.0, 60
    tex = board_image(board, px_per_m)
    tex = cv2.copyMakeBorder(tex, margin_px, margin_px, margin_px, margin_px, cv2.BORDER_CONSTANT, value=255)
    s = 1.0 / px_per_m
    # texture pixel (u, v) -> board point ((u + 0.5 - margin) s, (v + 0.5 - margin) s, 0)
    A = np.array([[s, 0.0, (0.5 - margin_px) * s], [0.0, s, (0.5 - margin_px) * s], [0.0, 0.0, 1.0]])
    f = supersample
    K_hi = K.copy()
    K_hi[0, 0] *= f
    K_hi[1, 1] *= f
    K_hi[0, 2] = f * (K[0, 2] + 0.5) - 0.5
    K_hi[1, 2] = f * (K[1, 2] + 0.5) - 0.5
    R, t = T_camera_board[:3, :3], T_camera_board[:3, 3]
    H = K_hi @ np.column_stack([R[:, 0], R[:, 1], t]) @ A
    hi = cv2.warpPerspective(tex, H, (WIDTH * f, HEIGHT * f), flags=cv2.INTER_LINEAR, borderValue=100)
    img = cv2.resize(hi, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA).astype(np.float64)
    img += rng.normal(0.0, noise_std, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _board_in_view(rng: np.random.Generator, board: BoardSpec = BOARD) -> np.ndarray:
    w, h = board.size_m
    z = rng.uniform(0.45, 0.8)
    centre = np.array([rng.uniform(-0.08, 0.08), rng.uniform(-0.05, 0.05), z])
    axis = rng.normal(size=3)
    axis[2] *= 0.3
    R = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(rng.uniform(10, 32))).as_matrix()
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = centre - R @ np.array([w / 2, h / 2, 0.0])
    return T


def make_samples(mode: str, n: int, seed: int = 0, tcp_noise_mm: float = 0.1, tcp_noise_deg: float = 0.01):
    """(truth, [(image, T_base_tcp)]): truth holds T_base_camera + T_tcp_board, or T_tcp_camera + T_base_board.
    The reported TCP poses carry a robot-like error (tcp_noise_mm / tcp_noise_deg std)."""
    rng = np.random.default_rng(seed)
    if mode == "eye-to-hand":
        truth = {"T_base_camera": look_at([1.1, 0.25, 0.75], [0.45, 0.0, 0.2]),
                 "T_tcp_board": pose([0.02, -0.1, 0.05], [0.3, -0.2, 0.1])}
    else:
        truth = {"T_tcp_camera": pose([0.06, 0.0, 0.04], [0.0, 0.0, -np.pi / 2]),
                 "T_base_board": pose([0.55, -0.1, 0.0], [0.0, 0.0, 0.4])}
    samples = []
    for _ in range(n):
        T_cb = _board_in_view(rng)
        if mode == "eye-to-hand":
            T_bt = truth["T_base_camera"] @ T_cb @ np.linalg.inv(truth["T_tcp_board"])
        else:
            T_bt = truth["T_base_board"] @ np.linalg.inv(T_cb) @ np.linalg.inv(truth["T_tcp_camera"])
        noisy = T_bt @ pose(rng.normal(0, tcp_noise_mm * 1e-3, 3), np.radians(rng.normal(0, tcp_noise_deg, 3)))
        samples.append((render(T_cb, rng), noisy))
    return truth, samples


def write_dataset(directory: str | Path, mode: str, n: int, seed: int = 0, name: str = "front") -> dict:
    """A calibration data set folder (calibration.yaml + PNGs) for `antigrounding calibrate`; returns the truth."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    truth, samples = make_samples(mode, n, seed)
    entries = []
    for i, (img, T_bt) in enumerate(samples):
        cv2.imwrite(str(directory / f"{i:03d}.png"), img)
        entries.append({"image": f"{i:03d}.png", "T_base_tcp": [float(v) for v in T_bt.flatten()]})
    data = {"mode": mode,
            "camera": {"name": name, "width": WIDTH, "height": HEIGHT, "fx": float(K[0, 0]), "fy": float(K[1, 1]),
                       "cx": float(K[0, 2]), "cy": float(K[1, 2]), "dist": [0.0] * 5},
            "board": {"squares_x": BOARD.squares_x, "squares_y": BOARD.squares_y, "square_m": BOARD.square_m,
                      "marker_m": BOARD.marker_m, "dictionary": BOARD.dictionary},
            "samples": entries}
    (directory / "calibration.yaml").write_text(yaml.safe_dump(data, sort_keys=False, width=200))
    return truth
