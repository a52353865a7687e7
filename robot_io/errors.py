"""Typed errors of the hardware boundary (re-exported by `robot_io.robot`)."""

from __future__ import annotations


class RobotError(Exception):
    """Base class of every error a `Robot` raises on purpose."""


class NotConnectedError(RobotError):
    """A method that needs a live connection was called before `connect()` or after `disconnect()`."""


class ConnectionLostError(RobotError):
    """The link to the arm (or the sim lab) died: process gone, socket reset, peer silent past a timeout."""


class SafetyRejected(RobotError):
    """The safety envelope found nothing it could send (NaN, wrong shape, all outside the workspace)."""


class ProtectiveStopError(RobotError):
    """The arm's own safety system stopped it (UR protective stop, Franka reflex, xArm error state).

    Drivers never clear it on their own: the user inspects the cause and calls the driver's `recover()`.
    """


class VendorError(RobotError):
    """The vendor controller refused or failed a command (an error code, a reflex, a script that stopped)."""
