"""The xArm SDK's integer return codes and controller error codes, mapped to typed `robot_io` errors.

Every xArm SDK call returns an integer code (or `(code, value)`) instead of raising. `check(code, what)` turns
each code into what a driver must do: 0 and 2 (a warning) go on; link codes raise `ConnectionLostError`;
1 (the controller holds an error) and -9 (emergency stop) raise `ProtectiveStopError`; limit refusals raise
`SafetyRejected`; everything else raises `VendorError`. The table covers every `APIState` code of SDK 1.18.4
(tests/robot_io/test_xarm_driver.py checks that against the installed SDK). `controller_error(err)` explains a
controller error code (from `get_err_warn_code`) with the SDK's own title and advice: every one of them means
the arm's own safety system stopped it, so all become `ProtectiveStopError`, cleared only by `recover()`.
"""

from __future__ import annotations

import contextlib
import io
import logging

from robot_io.errors import ConnectionLostError, ProtectiveStopError, RobotError, SafetyRejected, VendorError

log = logging.getLogger(__name__)

OK, HAS_ERROR, HAS_WARN = 0, 1, 2
_LINK = "link"
_PROTECTIVE = "protective"
_LIMIT = "limit"
_VENDOR = "vendor"

# code: (kind, meaning). Meanings paraphrase xarm/x3/code.py and xarm/core/config/x_config.py (UxbusState).
API_CODES: dict[int, tuple[str, str]] = {
    -1: (_LINK, "not connected to the control box"),
    -2: (_VENDOR, "the arm is not ready (enable it, set the mode, then set state 0)"),
    -3: (_VENDOR, "SDK exception (probably a bad parameter)"),
    -4: (_VENDOR, "command does not exist on this firmware"),
    -6: (_LIMIT, "Cartesian (TCP) limit"),
    -7: (_LIMIT, "joint angle limit"),
    -8: (_LIMIT, "value out of range"),
    -9: (_PROTECTIVE, "emergency stop"),
    -10: (_VENDOR, "no joint with this id"),
    -11: (_VENDOR, "Blockly conversion failed"),
    -12: (_VENDOR, "Blockly app raised"),
    0: ("ok", "success"),
    1: (_PROTECTIVE, "the controller holds an uncleared error"),
    2: ("warning", "the controller holds an uncleared warning"),
    3: (_LINK, "no reply before the SDK's timeout"),
    4: (_LINK, "reply of the wrong length"),
    5: (_LINK, "reply with the wrong sequence number"),
    6: (_LINK, "reply with the wrong protocol flag"),
    7: (_LINK, "reply to a different command"),
    8: (_LINK, "could not write to the socket"),
    9: (_VENDOR, "not ready to move (enable the motors, set the mode, then set state 0)"),
    10: (_VENDOR, "result invalid or execution failed"),
    11: (_VENDOR, "other controller error"),
    12: (_VENDOR, "parameter error"),
    20: (_VENDOR, "host id error (end-effector IO or linear track)"),
    21: (_VENDOR, "Modbus baud rate not supported"),
    22: (_VENDOR, "end-effector Modbus baud rate incorrect"),
    23: (_VENDOR, "Modbus reply length error"),
    31: (_VENDOR, "trajectory read/write failed"),
    32: (_VENDOR, "trajectory read/write timed out"),
    33: (_VENDOR, "trajectory playback timed out"),
    34: (_VENDOR, "trajectory playback failed"),
    41: (_VENDOR, "suction cup timed out"),
    51: (_VENDOR, "wrong mode for this command"),
    80: (_VENDOR, "linear track fault"),
    81: (_VENDOR, "linear track SCI is low"),
    82: (_VENDOR, "linear track not initialised"),
    100: (_VENDOR, "waiting for the motion to finish timed out"),
    101: (_VENDOR, "state checks failed too often while waiting"),
    102: (_VENDOR, "end effector fault"),
    103: (_VENDOR, "end effector not enabled"),
}
# 129..144: standard Modbus-TCP exception codes (api_code - 0x80).
API_CODES.update({c: (_VENDOR, f"Modbus-TCP exception {c - 0x80}") for c in range(129, 145)})

EMERGENCY_STOP_ERRORS = (1, 2, 3)


def import_xarm_api():
    """The SDK's XArmAPI class; the SDK prints its version to stdout on import, kept out of --json output."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from xarm.wrapper import XArmAPI
    except ImportError as e:
        raise RobotError(f"the xArm driver needs the xArm SDK: pip install 'antigrounding[xarm]' ({e})") from None
    return XArmAPI


def check(code: int, what: str, where: str = "xArm") -> int:
    """Return `code` if the call may be trusted (0, or 2 = a warning), else raise the matching typed error."""
    code = int(code)
    if code == OK:
        return code
    kind, meaning = API_CODES.get(code, (_VENDOR, "unknown code"))
    msg = f"{where}: {what} returned code {code} ({meaning})"
    if kind == "warning":
        log.warning("%s", msg)
        return code
    if kind == _LINK:
        raise ConnectionLostError(msg + "; check the cable and that no other client holds the control box")
    if kind == _PROTECTIVE:
        raise ProtectiveStopError(msg + "; read the controller error, fix its cause, then call recover()")
    if kind == _LIMIT:
        raise SafetyRejected(msg)
    raise VendorError(msg)


def error_title(err: int) -> tuple[str, str]:
    """(title, advice) of a controller error code, from the installed SDK's own table."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from xarm.core.config.x_code import ControllerErrorCodeMap
    except ImportError:
        return "controller error", ""
    info = ControllerErrorCodeMap.get(err, ControllerErrorCodeMap.get("other", {})).get("en", {})
    return str(info.get("title", "controller error")).strip(), str(info.get("desc", "")).strip()


def controller_error(err: int, where: str = "xArm") -> ProtectiveStopError:
    """The error to raise for a non-zero controller error code (the arm stopped itself)."""
    title, advice = error_title(int(err))
    kind = "emergency stop" if err in EMERGENCY_STOP_ERRORS else "controller error"
    tail = f" {advice}" if advice else ""
    return ProtectiveStopError(f"{where}: {kind} C{err}: {title}.{tail} Then call recover() (clean_error, "
                               f"motion_enable, set_mode, set_state); the driver never clears it on its own.")
