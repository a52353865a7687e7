"""Camera extrinsics from a ChArUco board and the arm's poses (hand-eye calibration), written as a camera config.

Two set-ups, both solved with OpenCV's `cv2.calibrateHandEye` (Tsai, Park, Horaud, Andreff, Daniilidis; "best"
tries all and keeps the smallest residual):
- eye-to-hand: the camera is fixed, the board is held by (or fixed to) the arm. Solves T_base_camera (and the
  board's pose on the flange, T_tcp_board). The classic trick: pass base->gripper instead of gripper->base.
- eye-in-hand: the camera rides on the arm, the board is fixed in the cell. Solves T_tcp_camera (and T_base_board).
Each sample is one image of the board (ChArUco corners found with OpenCV's aruco module, pose by PnP) and the
TCP pose T_base_tcp the arm reported when the image was taken.

The residual says how well one rigid solution explains every sample: the transform that should be constant
(T_tcp_board for eye-to-hand, T_base_board for eye-in-hand) is computed per sample, and its spread around the
mean is reported in mm and degrees (RMS and max), with the board corners' reprojection RMS through the chain.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

MODES = ("eye-to-hand", "eye-in-hand")
METHODS = ("tsai", "park", "horaud", "andreff", "daniilidis")
MIN_CORNERS = 6


class CalibrationError(ValueError):
    """Bad calibration input (file, field, expected, got) or too little usable data."""


def _cv2():
    try:
        import cv2
        cv2.aruco.CharucoDetector  # noqa: B018 - the contrib build (>= 4.7) is needed
    except (ImportError, AttributeError) as e:
        raise CalibrationError(f"calibration needs OpenCV's aruco module: pip install 'antigrounding[calibrate]' "
                               f"({e})") from None
    return cv2


@dataclass(frozen=True)
class BoardSpec:
    """A ChArUco board: squares_x by squares_y chessboard squares of square_m, ArUco markers of marker_m inside the
    white squares, from OpenCV's predefined `dictionary` (e.g. DICT_5X5_100). Print it with `board_image`."""

    squares_x: int = 7
    squares_y: int = 5
    square_m: float = 0.04
    marker_m: float = 0.03
    dictionary: str = "DICT_5X5_100"

    def __post_init__(self) -> None:
        if self.squares_x < 3 or self.squares_y < 3:
            raise CalibrationError(f"board: need at least 3 x 3 squares, got {self.squares_x} x {self.squares_y}")
        if not (math.isfinite(self.square_m) and math.isfinite(self.marker_m) and 0 < self.marker_m < self.square_m):
            raise CalibrationError(f"board: need 0 < marker_m < square_m, got marker_m={self.marker_m}, "
                                   f"square_m={self.square_m}")

    @property
    def size_m(self) -> tuple[float, float]:
        return self.squares_x * self.square_m, self.squares_y * self.square_m

    def cv_board(self):
        cv2 = _cv2()
        d = getattr(cv2.aruco, self.dictionary, None)
        if not isinstance(d, int) or not self.dictionary.startswith("DICT_"):
            raise CalibrationError(f"board: field 'dictionary': expected an OpenCV ArUco dictionary name such as "
                                   f"DICT_5X5_100, got {self.dictionary!r}")
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_m, self.marker_m,
                                      cv2.aruco.getPredefinedDictionary(d))


def board_image(board: BoardSpec, px_per_m: float = 5000.0) -> np.ndarray:
    """The board as a grey uint8 image (no margin), `px_per_m` pixels per metre (print at that scale)."""
    w, h = (round(s * px_per_m) for s in board.size_m)
    return board.cv_board().generateImage((w, h), marginSize=0, borderBits=1)


@dataclass(frozen=True)
class BoardDetection:
    """The board seen in one image: its pose in the camera, the corners used, and the PnP reprojection RMS."""

    T_camera_board: np.ndarray
    object_points_m: np.ndarray       # (N, 3) corners in the board frame
    image_points_px: np.ndarray       # (N, 2) where they were found
    reprojection_rms_px: float


def _to_T(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.asarray(rvec, float).reshape(3))[0]
    T[:3, 3] = np.asarray(tvec, float).reshape(3)
    return T


def detect_board(image: np.ndarray, board: BoardSpec, K: np.ndarray, dist: np.ndarray | None = None
                 ) -> BoardDetection | None:
    """ChArUco corners in `image` (grey or RGB uint8) and the board's pose by PnP; None if fewer than 6 corners."""
    cv2 = _cv2()
    img = np.asarray(image)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    cv_board = board.cv_board()
    corners, ids, _, _ = cv2.aruco.CharucoDetector(cv_board).detectBoard(gray)
    if ids is None or len(ids) < MIN_CORNERS:
        return None
    obj, imgp = cv_board.matchImagePoints(corners, ids)
    obj, imgp = obj.reshape(-1, 3).astype(np.float64), imgp.reshape(-1, 2).astype(np.float64)
    K = np.asarray(K, float)
    dist = np.zeros(5) if dist is None else np.asarray(dist, float)
    ok, rvec, tvec = cv2.solvePnP(obj, imgp, K, dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        return None
    rvec, tvec = cv2.solvePnPRefineLM(obj, imgp, K, dist, rvec, tvec)
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, dist)
    rms = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - imgp) ** 2, axis=1))))
    return BoardDetection(_to_T(rvec, tvec), obj, imgp, rms)


@dataclass(frozen=True)
class HandEyeResult:
    """mode; T_base_camera (eye-to-hand) or T_tcp_camera (eye-in-hand) as `T_solved`; the constant partner
    (T_tcp_board or T_base_board) as `T_partner`; residuals; which method won; how many samples were used."""

    mode: str
    method: str
    T_solved: np.ndarray
    T_partner: np.ndarray
    residual_rms_mm: float
    residual_max_mm: float
    residual_rms_deg: float
    residual_max_deg: float
    reprojection_rms_px: float
    n_samples: int

    def summary(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if not k.startswith("T_")}
        name = "T_base_camera" if self.mode == "eye-to-hand" else "T_tcp_camera"
        d[name] = self.T_solved.flatten().tolist()
        return d


def _inv(T: np.ndarray) -> np.ndarray:
    Ti = np.eye(4)
    Ti[:3, :3] = T[:3, :3].T
    Ti[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return Ti


def _mean_pose(Ts: list[np.ndarray]) -> np.ndarray:
    """Chordal mean of rotations (SVD projection of the summed matrices) and mean translation."""
    U, _, Vt = np.linalg.svd(sum(T[:3, :3] for T in Ts))
    R = U @ Vt
    if np.linalg.det(R) < 0:
        R = U @ np.diag([1, 1, -1]) @ Vt
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, np.mean([T_[:3, 3] for T_ in Ts], axis=0)
    return T


def rotation_angle_deg(R: np.ndarray) -> float:
    return math.degrees(math.acos(float(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0))))


def _partners(mode: str, T_solved: np.ndarray, T_base_tcp: list[np.ndarray], dets: list[BoardDetection]):
    if mode == "eye-to-hand":      # T_tcp_board_i = inv(T_base_tcp_i) T_base_camera T_camera_board_i
        return [_inv(Tb) @ T_solved @ d.T_camera_board for Tb, d in zip(T_base_tcp, dets)]
    return [Tb @ T_solved @ d.T_camera_board for Tb, d in zip(T_base_tcp, dets)]   # T_base_board_i


def _predicted_T_camera_board(mode: str, T_solved, T_partner, T_base_tcp_i) -> np.ndarray:
    if mode == "eye-to-hand":
        return _inv(T_solved) @ T_base_tcp_i @ T_partner
    return _inv(T_base_tcp_i @ T_solved) @ T_partner


def solve_hand_eye(T_base_tcp: list[np.ndarray], detections: list[BoardDetection], mode: str, K: np.ndarray,
                   dist: np.ndarray | None = None, method: str = "best") -> HandEyeResult:
    """Solve the camera pose from >= 3 samples (use 10-20 with varied orientations) and report the residual."""
    cv2 = _cv2()
    if mode not in MODES:
        raise CalibrationError(f"mode: expected one of {list(MODES)}, got {mode!r}")
    if method != "best" and method not in METHODS:
        raise CalibrationError(f"method: expected 'best' or one of {list(METHODS)}, got {method!r}")
    if len(T_base_tcp) != len(detections) or len(detections) < 3:
        raise CalibrationError(f"need at least 3 samples with the board detected, got {len(detections)}")
    if mode == "eye-to-hand":      # feed base->tcp so that OpenCV's "camera to gripper" becomes camera to base
        motion = [_inv(T) for T in T_base_tcp]
    else:
        motion = list(T_base_tcp)
    R_g, t_g = [T[:3, :3] for T in motion], [T[:3, 3] for T in motion]
    R_t, t_t = [d.T_camera_board[:3, :3] for d in detections], [d.T_camera_board[:3, 3] for d in detections]
    flags = {"tsai": cv2.CALIB_HAND_EYE_TSAI, "park": cv2.CALIB_HAND_EYE_PARK, "horaud": cv2.CALIB_HAND_EYE_HORAUD,
             "andreff": cv2.CALIB_HAND_EYE_ANDREFF, "daniilidis": cv2.CALIB_HAND_EYE_DANIILIDIS}
    best: HandEyeResult | None = None
    for name in (METHODS if method == "best" else (method,)):
        R, t = cv2.calibrateHandEye(R_g, t_g, R_t, t_t, method=flags[name])
        if not (np.all(np.isfinite(R)) and np.all(np.isfinite(t))):
            continue
        T_solved = np.eye(4)
        T_solved[:3, :3], T_solved[:3, 3] = R, np.asarray(t).reshape(3)
        result = _residual(mode, name, T_solved, T_base_tcp, detections, K, dist)
        if best is None or result.residual_rms_mm + result.residual_rms_deg < best.residual_rms_mm + \
                best.residual_rms_deg:
            best = result
    if best is None:
        raise CalibrationError("calibrateHandEye found no finite solution (are the TCP poses varied in rotation?)")
    return best


def _residual(mode, method, T_solved, T_base_tcp, dets, K, dist) -> HandEyeResult:
    cv2 = _cv2()
    partners = _partners(mode, T_solved, T_base_tcp, dets)
    T_partner = _mean_pose(partners)
    dt_mm = np.array([np.linalg.norm(P[:3, 3] - T_partner[:3, 3]) * 1e3 for P in partners])
    dr_deg = np.array([rotation_angle_deg(T_partner[:3, :3].T @ P[:3, :3]) for P in partners])
    errs = []
    dist = np.zeros(5) if dist is None else np.asarray(dist, float)
    for Tb, d in zip(T_base_tcp, dets):
        T_cb = _predicted_T_camera_board(mode, T_solved, T_partner, Tb)
        rvec = cv2.Rodrigues(T_cb[:3, :3])[0]
        proj, _ = cv2.projectPoints(d.object_points_m, rvec, T_cb[:3, 3], np.asarray(K, float), dist)
        errs.append(np.sum((proj.reshape(-1, 2) - d.image_points_px) ** 2, axis=1))
    reproj = float(np.sqrt(np.mean(np.concatenate(errs))))
    return HandEyeResult(mode=mode, method=method, T_solved=T_solved, T_partner=T_partner,
                         residual_rms_mm=float(np.sqrt(np.mean(dt_mm ** 2))), residual_max_mm=float(dt_mm.max()),
                         residual_rms_deg=float(np.sqrt(np.mean(dr_deg ** 2))), residual_max_deg=float(dr_deg.max()),
                         reprojection_rms_px=reproj, n_samples=len(dets))


def camera_config(name: str, width: int, height: int, K: np.ndarray, T_world_camera: np.ndarray) -> dict[str, Any]:
    """The fields of configs/cameras/*.yaml (sim.camera.CameraSpec.from_dict reads them back)."""
    K = np.asarray(K, float)
    return {"name": name, "width": int(width), "height": int(height), "fx": float(K[0, 0]), "fy": float(K[1, 1]),
            "cx": float(K[0, 2]), "cy": float(K[1, 2]),
            "T_world_camera": [round(float(v), 9) for v in np.asarray(T_world_camera, float).flatten()]}


def write_camera_config(path: str | Path, fields: dict[str, Any], result: HandEyeResult) -> Path:
    """Write the camera config with a header saying how it was calibrated and how well."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = (f"# Written by `antigrounding calibrate` ({result.mode}, cv2.calibrateHandEye {result.method}, "
            f"{result.n_samples} samples).\n# Residual: {result.residual_rms_mm:.3f} mm / "
            f"{result.residual_rms_deg:.3f} deg RMS (max {result.residual_max_mm:.3f} mm / "
            f"{result.residual_max_deg:.3f} deg), board reprojection "
            f"{result.reprojection_rms_px:.3f} px RMS.\n")
    if result.mode == "eye-in-hand":
        head += ("# Eye-in-hand: the camera moves with the arm. T_world_camera is its pose at the first sample; "
                 "T_tcp_camera is the mount.\n")
    path.write_text(head + yaml.safe_dump(fields, sort_keys=False, default_flow_style=None, width=200))
    return path
