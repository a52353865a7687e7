"""Length-prefixed msgpack frames over a TCP socket, with numpy arrays as raw bytes.

A frame is a 4-byte big-endian payload length followed by one msgpack document. Arrays travel as
`{"__nd__": True, "dtype": "<f4", "shape": [H, W], "data": <raw bytes>}`. There is deliberately no
pickle anywhere: decoding accepts only plain msgpack types and a whitelisted set of numeric dtypes, so a
peer (or a log replayed later) can never make this process execute code.
"""

from __future__ import annotations

import re
import socket
import struct
from typing import Any

import msgpack
import numpy as np

from robot_io.errors import ConnectionLostError, RobotError

HEADER = struct.Struct(">I")
# Big enough for several 1280x720 RGB-D frames in one observation, small enough that a corrupt length
# prefix cannot make us allocate gigabytes.
MAX_FRAME_BYTES = 128 * 1024 * 1024
MAX_NDIM = 32
_RECV_CHUNK = 1 << 20
# byte order + kind (bool, signed, unsigned, float, complex) + item size. Checked with a regex *before*
# numpy parses the string, so no structured/object dtype can sneak in.
_DTYPE_RE = re.compile(r"^[<>|=]?[biufc]\d{1,2}$")


class ProtocolError(RobotError):
    """A frame or message is malformed (too big, not msgpack, a bad array); the stream cannot be trusted."""


def ndarray_to_msg(a: np.ndarray) -> dict[str, Any]:
    """Encode a numeric array as a msgpack-safe dict (C-order raw bytes + dtype string + shape)."""
    a = np.asarray(a)
    if a.dtype.kind not in "biufc":
        raise ProtocolError(f"cannot send an array of dtype {a.dtype} (only bool/int/uint/float/complex)")
    return {
        "__nd__": True,
        "dtype": a.dtype.str,
        "shape": [int(s) for s in a.shape],
        "data": np.ascontiguousarray(a).tobytes(order="C"),
    }


def ndarray_from_msg(msg: Any) -> np.ndarray:
    """Decode `ndarray_to_msg` output into a writable array; an ndarray passes through unchanged.

    (recv_msg already turns array dicts into arrays, so message parsers accept both forms.)
    """
    if isinstance(msg, np.ndarray):
        return msg
    if not isinstance(msg, dict) or msg.get("__nd__") is not True:
        raise ProtocolError(f"expected an encoded array dict with '__nd__': true, got {type(msg).__name__}")
    dtype_str = msg.get("dtype")
    shape = msg.get("shape")
    data = msg.get("data")
    if not isinstance(dtype_str, str) or not _DTYPE_RE.match(dtype_str):
        raise ProtocolError(f"array dtype {dtype_str!r} is not an allowed numeric dtype")
    dtype = np.dtype(dtype_str)
    if (
        not isinstance(shape, list | tuple)
        or len(shape) > MAX_NDIM
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise ProtocolError(f"array shape {shape!r} is not a list of non-negative ints")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError(f"array data must be raw bytes, got {type(data).__name__}")
    n_items = 1
    for s in shape:
        n_items *= s
    if n_items * dtype.itemsize != len(data):
        raise ProtocolError(
            f"array of dtype {dtype_str} and shape {list(shape)} needs {n_items * dtype.itemsize} bytes, "
            f"got {len(data)}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return ndarray_to_msg(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__} as msgpack (no pickle across a socket)")


def _object_hook(d: dict[str, Any]) -> Any:
    if d.get("__nd__") is True:
        return ndarray_from_msg(d)
    return d


def _ext_hook(code: int, data: bytes) -> Any:
    raise ProtocolError(f"msgpack extension type {code} is not accepted")


def pack(obj: Any) -> bytes:
    """msgpack-encode `obj`; ndarrays anywhere inside are encoded as array dicts, numpy scalars as Python."""
    try:
        return msgpack.packb(obj, default=_default, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise ProtocolError(f"cannot encode message: {e}") from e


def unpack(payload: bytes, *, decode_arrays: bool = True) -> Any:
    """Decode one msgpack document; array dicts become ndarrays when `decode_arrays`."""
    try:
        return msgpack.unpackb(
            payload,
            raw=False,
            object_hook=_object_hook if decode_arrays else None,
            ext_hook=_ext_hook,
            strict_map_key=True,
        )
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise ProtocolError(f"malformed msgpack payload ({len(payload)} bytes): {e}") from e


def send_msg(
    sock: socket.socket,
    obj: Any,
    *,
    timeout_s: float | None = None,
    max_frame_bytes: int = MAX_FRAME_BYTES,
) -> None:
    """Send one frame. `timeout_s` (if given) becomes the socket's timeout.

    Raises ProtocolError if `obj` cannot be encoded or is larger than `max_frame_bytes`, and
    ConnectionLostError if the socket is closed, reset or does not drain within the timeout.
    """
    payload = pack(obj)
    if len(payload) > max_frame_bytes:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds the frame limit of {max_frame_bytes}")
    try:
        if timeout_s is not None:
            sock.settimeout(timeout_s)
        sock.sendall(HEADER.pack(len(payload)) + payload)
    except TimeoutError as e:
        raise ConnectionLostError(f"send timed out after {timeout_s} s") from e
    except OSError as e:
        raise ConnectionLostError(f"send failed: {e}") from e


def _recv_exact(sock: socket.socket, n: int, what: str) -> bytes:
    # Grow the buffer as bytes arrive, so an announced length costs nothing until the peer actually sends it.
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), _RECV_CHUNK))
        if not chunk:
            if not buf and what == "header":
                raise ConnectionLostError("peer closed the connection")
            raise ConnectionLostError(f"peer closed the connection mid-frame ({what}: {len(buf)} of {n} bytes)")
        buf += chunk
    return bytes(buf)


def recv_msg(
    sock: socket.socket,
    *,
    timeout_s: float | None = None,
    max_frame_bytes: int = MAX_FRAME_BYTES,
    decode_arrays: bool = True,
) -> Any:
    """Receive one frame and decode it. `timeout_s` (if given) becomes the socket's timeout.

    Raises ConnectionLostError on EOF, reset or timeout (after a timeout the stream may be mid-frame,
    so the connection must be dropped), ProtocolError on an oversized or malformed frame.
    """
    try:
        if timeout_s is not None:
            sock.settimeout(timeout_s)
        (n,) = HEADER.unpack(_recv_exact(sock, HEADER.size, "header"))
        if n > max_frame_bytes:
            raise ProtocolError(f"incoming frame of {n} bytes exceeds the frame limit of {max_frame_bytes}")
        payload = _recv_exact(sock, n, "payload")
    except TimeoutError as e:
        raise ConnectionLostError(f"no reply within {sock.gettimeout()} s") from e
    except OSError as e:
        raise ConnectionLostError(f"receive failed: {e}") from e
    return unpack(payload, decode_arrays=decode_arrays)
