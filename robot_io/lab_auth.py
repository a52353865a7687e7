"""Who may talk to the sim lab: session secrets, their hand-off, and the challenge-response both sides run.

The process that launches the lab draws two random secrets: one for the *control* channel (the planner's
`SimRobot`: observe, execute, stop) and one for the *evaluation* channel (`LabEvaluator`: the lab's truth).
They reach the lab through an inherited pipe (`--secret-fd`), never on a command line, in the environment,
in a log or in the spec file. A client proves it holds a secret without sending it:

    client -> {"op": "challenge"}                                  lab -> {"nonce": 32 random bytes}
    client -> {"op": "auth", "role", "client_nonce", "mac"}       lab -> {"mac": the lab's own proof}

where the client's mac is HMAC-SHA256(secret, "client" | role | nonce | client_nonce) and the lab answers
with HMAC-SHA256(secret, "lab" | role | nonce | client_nonce), so each side knows the other holds the
secret, and a recorded exchange is useless for the next connection (fresh nonces).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass

ROLES = ("control", "evaluate")
SECRET_BYTES = 32
NONCE_BYTES = 32
_MAX_SECRET_LINE = 4096    # what the lab reads from its secret pipe at most
_DOMAIN = b"antigrounding-lab/1"


class LabAuthError(Exception):
    """The secret hand-off or a challenge-response failed."""


@dataclass(frozen=True)
class LabSecrets:
    """The two session secrets. repr never shows them."""

    control: bytes
    evaluate: bytes

    def __repr__(self) -> str:
        return "LabSecrets(<hidden>)"

    @classmethod
    def generate(cls) -> LabSecrets:
        return cls(secrets.token_bytes(SECRET_BYTES), secrets.token_bytes(SECRET_BYTES))

    def for_role(self, role: str) -> bytes:
        if role not in ROLES:
            raise LabAuthError(f"unknown role {role!r}; expected one of {list(ROLES)}")
        return self.control if role == "control" else self.evaluate

    def to_line(self) -> bytes:
        return (json.dumps({"control": self.control.hex(), "evaluate": self.evaluate.hex()}) + "\n").encode()

    @classmethod
    def read_fd(cls, fd: int) -> LabSecrets:
        """Read the one line `launch_lab` wrote into the pipe `fd`, then close it."""
        buf = b""
        try:
            while b"\n" not in buf and len(buf) < _MAX_SECRET_LINE:
                chunk = os.read(fd, _MAX_SECRET_LINE - len(buf))
                if not chunk:
                    break
                buf += chunk
        except OSError as e:
            raise LabAuthError(f"cannot read the session secrets from fd {fd}: {e}") from e
        finally:
            os.close(fd)
        try:
            d = json.loads(buf.split(b"\n", 1)[0])
            out = cls(bytes.fromhex(d["control"]), bytes.fromhex(d["evaluate"]))
        except (ValueError, KeyError, TypeError) as e:
            raise LabAuthError(f"fd {fd} did not carry the session secrets line ({type(e).__name__})") from None
        if len(out.control) < 16 or len(out.evaluate) < 16 or out.control == out.evaluate:
            raise LabAuthError("session secrets must be two different values of at least 16 bytes")
        return out


def _mac(secret: bytes, side: bytes, role: str, nonce: bytes, client_nonce: bytes) -> bytes:
    msg = b"|".join((_DOMAIN, side, role.encode(), nonce, client_nonce))
    return hmac.new(secret, msg, hashlib.sha256).digest()


def client_proof(secret: bytes, role: str, nonce: bytes, client_nonce: bytes) -> bytes:
    return _mac(secret, b"client", role, nonce, client_nonce)


def lab_proof(secret: bytes, role: str, nonce: bytes, client_nonce: bytes) -> bytes:
    return _mac(secret, b"lab", role, nonce, client_nonce)


def verify(expected: bytes, got: object) -> bool:
    """Constant-time comparison that accepts only bytes."""
    return isinstance(got, bytes) and hmac.compare_digest(expected, got)


def authenticate(request, secret: bytes, role: str) -> None:
    """Client side: run challenge-response over `request(msg) -> reply dict` (which raises on ok=False).

    Raises LabAuthError when the lab's answer does not prove that it holds the same secret.
    """
    nonce = request({"op": "challenge"}).get("nonce")
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
        raise LabAuthError("the lab's challenge carried no valid nonce")
    client_nonce = secrets.token_bytes(NONCE_BYTES)
    reply = request({"op": "auth", "role": role, "client_nonce": client_nonce,
                     "mac": client_proof(secret, role, nonce, client_nonce)})
    if not verify(lab_proof(secret, role, nonce, client_nonce), reply.get("mac")):
        raise LabAuthError("the peer did not prove it holds the session secret: not our lab")
