"""Framing and array encoding: round trips, big frames, truncation, and refusal of anything executable."""

import pickle
import socket
import struct
import threading

import msgpack
import numpy as np
import pytest

from robot_io.errors import ConnectionLostError
from robot_io.observation import CameraFrame, Observation
from robot_io.protocol import (
    ProtocolError,
    ndarray_from_msg,
    ndarray_to_msg,
    pack,
    recv_msg,
    send_msg,
    unpack,
)
from robot_io.trajectory import JointTrajectory


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def _send_in_thread(sock, obj, **kw):
    t = threading.Thread(target=send_msg, args=(sock, obj), kwargs=kw, daemon=True)
    t.start()
    return t


ARRAYS = {
    "u8": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    "f32": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
    "f64": np.array([np.pi, -0.0, 1e-300, np.nan, np.inf]),
    "i64": np.array([-(2**62), 0, 2**62], dtype=np.int64),
    "i16": np.array([[-3, 7]], dtype=np.int16),
    "bool": np.array([True, False, True]),
    "c64": np.array([1 + 2j, -3j], dtype=np.complex64),
    "big_endian": np.array([1.5, 2.5], dtype=">f4"),
    "scalar": np.array(3.25),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "strided": np.arange(20, dtype=np.float64).reshape(4, 5).T[::2],
}


def test_round_trip_arrays_of_several_dtypes(pair):
    a, b = pair
    msg = {"op": "x", "arrays": ARRAYS, "nested": [{"q": ARRAYS["f64"]}], "n": np.int64(7),
           "f": np.float32(0.5)}
    send_msg(a, msg)
    got = recv_msg(b)
    assert got["op"] == "x" and got["n"] == 7 and got["f"] == 0.5
    for name, arr in ARRAYS.items():
        out = got["arrays"][name]
        assert out.dtype == arr.dtype, name
        assert out.shape == arr.shape, name
        np.testing.assert_array_equal(out, arr, err_msg=name)
        assert out.flags.writeable
    np.testing.assert_array_equal(got["nested"][0]["q"], ARRAYS["f64"])


def test_big_frame_round_trip(pair):
    a, b = pair
    depth = np.random.default_rng(0).random((1080, 1920), dtype=np.float32)  # ~8 MB, far above socket buffers
    t = _send_in_thread(a, {"depth_m": depth})
    got = recv_msg(b, timeout_s=10.0)
    t.join(timeout=10.0)
    np.testing.assert_array_equal(got["depth_m"], depth)


def test_truncated_frame_raises_connection_lost(pair):
    a, b = pair
    a.sendall(struct.pack(">I", 100) + b"\x81\xa1x" + b"\x00" * 7)  # promises 100 bytes, sends 10
    a.close()
    with pytest.raises(ConnectionLostError, match="mid-frame"):
        recv_msg(b, timeout_s=2.0)


def test_eof_and_timeout_raise_connection_lost(pair):
    a, b = pair
    with pytest.raises(ConnectionLostError, match="no reply within"):
        recv_msg(b, timeout_s=0.05)
    a.close()
    with pytest.raises(ConnectionLostError, match="closed"):
        recv_msg(b, timeout_s=1.0)


def test_send_on_closed_socket_raises_connection_lost(pair):
    a, b = pair
    b.close()
    with pytest.raises(ConnectionLostError):
        for _ in range(100):  # the first sends may still land in the kernel buffer
            send_msg(a, {"op": "heartbeat", "pad": b"x" * 65536}, timeout_s=1.0)


def test_frame_size_limit(pair):
    a, b = pair
    with pytest.raises(ProtocolError, match="frame limit"):
        send_msg(a, {"data": b"x" * 2000}, max_frame_bytes=1000)
    a.sendall(struct.pack(">I", 2**31))
    with pytest.raises(ProtocolError, match="frame limit"):
        recv_msg(b, timeout_s=1.0, max_frame_bytes=1 << 20)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_decoding_never_executes_code():
    # A pickle is not msgpack: it is refused, never unpickled.
    with pytest.raises(ProtocolError):
        unpack(pickle.dumps(_Evil()))
    # msgpack extension types are refused.
    with pytest.raises(ProtocolError, match="extension"):
        unpack(msgpack.packb(msgpack.ExtType(1, b"payload")))
    # Only plain numeric dtypes are accepted, checked before numpy parses the string.
    for dtype in ("O", "|O", "V8", "[('a', 'O')]", "<U4", "S3", "M8[s]"):
        bad = {"__nd__": True, "dtype": dtype, "shape": [1], "data": b"\x00" * 8}
        with pytest.raises(ProtocolError, match="dtype"):
            ndarray_from_msg(bad)
        with pytest.raises(ProtocolError):
            unpack(msgpack.packb(bad, use_bin_type=True))
    with pytest.raises(ProtocolError, match="bytes"):
        ndarray_from_msg({"__nd__": True, "dtype": "<f4", "shape": [3], "data": b"\x00" * 8})
    with pytest.raises(ProtocolError, match="shape"):
        ndarray_from_msg({"__nd__": True, "dtype": "<f4", "shape": [-1], "data": b""})
    # Encoding refuses objects that would need pickle.
    with pytest.raises(ProtocolError):
        pack({"x": _Evil()})
    with pytest.raises(ProtocolError, match="dtype"):
        ndarray_to_msg(np.array([{"a": 1}], dtype=object))


def test_encoded_array_dicts_are_plain_msgpack():
    enc = ndarray_to_msg(np.eye(3, dtype=np.float32))
    raw_bytes = np.eye(3, dtype=np.float32).tobytes()
    assert enc == {"__nd__": True, "dtype": "<f4", "shape": [3, 3], "data": raw_bytes}
    raw = unpack(pack({"K": enc}), decode_arrays=False)
    assert raw["K"]["__nd__"] is True and isinstance(raw["K"]["data"], bytes)


def _observation():
    rng = np.random.default_rng(1)
    frames = tuple(
        CameraFrame(name, rng.integers(0, 255, (6, 8, 3), dtype=np.uint8),
                    np.where(rng.random((6, 8)) < 0.1, np.nan, rng.random((6, 8))).astype(np.float32),
                    np.array([[10.0, 0, 4], [0, 10.0, 3], [0, 0, 1]]), np.eye(4))
        for name in ("front", "left")
    )
    return Observation(frames, np.arange(7) * 0.1, 0.04, np.eye(4), 12.5)


def test_observation_and_trajectory_messages_round_trip(pair):
    obs = _observation()
    traj = JointTrajectory(np.ones((5, 7)), 0.08, 0.02)
    a, b = pair
    send_msg(a, {"observation": obs.to_msg(), "trajectory": traj.to_msg()})
    got = recv_msg(b)
    obs2 = Observation.from_msg(got["observation"])
    assert [f.name for f in obs2.frames] == ["front", "left"]
    for f, g in zip(obs.frames, obs2.frames):
        np.testing.assert_array_equal(f.rgb, g.rgb)
        np.testing.assert_array_equal(f.depth_m, g.depth_m)  # NaN positions survive
        np.testing.assert_array_equal(f.K, g.K)
        assert g.depth_m.dtype == np.float32 and g.rgb.dtype == np.uint8
    np.testing.assert_array_equal(obs2.joint_pos_rad, obs.joint_pos_rad)
    assert obs2.gripper_width_m == 0.04 and obs2.stamp_s == 12.5
    assert obs2.frame("left").name == "left"
    traj2 = JointTrajectory.from_msg(got["trajectory"])
    np.testing.assert_array_equal(traj2.joint_pos_rad, traj.joint_pos_rad)
    np.testing.assert_array_equal(traj2.gripper_width_m, np.full(5, 0.08))
    assert traj2.dt_s == 0.02
    # to_msg output is msgpack-safe without the socket's array hooks too
    assert Observation.from_msg(unpack(msgpack.packb(obs.to_msg(), use_bin_type=True), decode_arrays=False))


def test_types_validate_structure():
    with pytest.raises(ValueError, match="uint8"):
        CameraFrame("c", np.zeros((4, 4, 3)), np.zeros((4, 4)), np.eye(3), np.eye(4))
    with pytest.raises(ValueError, match="depth_m"):
        CameraFrame("c", np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5)), np.eye(3), np.eye(4))
    with pytest.raises(ValueError, match="joint_pos_rad"):
        JointTrajectory(np.zeros(7), 0.0, 0.1)
    with pytest.raises(ValueError, match="gripper_width_m"):
        JointTrajectory(np.zeros((3, 7)), np.zeros(2), 0.1)
    with pytest.raises(TypeError, match="dt_s"):
        JointTrajectory(np.zeros((3, 7)), 0.0, "fast")
    with pytest.raises(KeyError, match="front"):
        _observation().frame("top")
    with pytest.raises(ValueError, match="field"):
        Observation.from_msg({"frames": []})
