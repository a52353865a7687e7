"""The sim lab's front door: connections, their cap and frame bounds, authentication, and which role may ask what.

`LabServer` accepts connections on a thread and serves each on its own thread; `serve` runs the engine's
jobs on the calling thread until a shutdown request. `run_lab_process` is a lab process's entry point (the
sim lab and the LIBERO lab share it): arguments, logging, the one `{"port": P}` line on stdout, `serve`.
A connection proves it holds a session secret (`robot_io.lab_auth`) before anything else; until then it may
only send small frames and must do so within AUTH_TIMEOUT_S. The *control* role is held by one connection at
a time. Requests are dispatched to `_op_<name>` methods of the subclass (`robot_io.simlab.SimLab`), which
owns the world.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from robot_io import lab_auth
from robot_io.errors import ConnectionLostError
from robot_io.lab_auth import LabSecrets
from robot_io.lab_limits import LimitViolation
from robot_io.protocol import ProtocolError, recv_msg, send_msg

log = logging.getLogger("robot_io.simlab")

AUTH_OPS = ("challenge", "auth")
ROLE_OPS = {
    "control": ("hello", "observe", "execute", "status", "stop", "heartbeat", "shutdown", "trace"),
    "evaluate": ("evaluate", "status"),
}
OPS = AUTH_OPS + ROLE_OPS["control"] + ("evaluate",)
MAX_CONNECTIONS = 8          # at once, authenticated or not; more are closed on accept
AUTH_TIMEOUT_S = 5.0         # a connection must authenticate within this long
EVAL_IDLE_TIMEOUT_S = 120.0  # an evaluation connection idle this long is closed (it holds a slot)
# Largest frame accepted per role, checked on the 4-byte length before anything is allocated. A control frame
# carries a trajectory (100,000 waypoints x 7 joints of float64 is 5.6 MB); nothing else needs more than a
# few hundred bytes.
MAX_FRAME_BYTES = {None: 4096, "evaluate": 4096, "control": 16 * 1024 * 1024}


@dataclass(eq=False)
class Conn:
    sock: socket.socket
    peer: str
    role: str | None = None      # None until it proves a secret; then "control" or "evaluate"
    nonce: bytes | None = None
    last_rx_s: float = field(default_factory=time.monotonic)
    last_rx_step: int = 0        # the lab's motion step count when its last message arrived


class LabServer:
    """Connections and roles; subclasses implement the ops, `_conn_closed` and own `_motion_steps`."""

    def __init__(self, secrets: LabSecrets) -> None:
        self._secrets = secrets
        self._state_lock = threading.Lock()
        self._shutdown = threading.Event()
        self._conns: set[Conn] = set()
        self._control: Conn | None = None
        self._motion_steps = 0          # physics steps of motion so far: the watchdog's clock in simulated time

    def _conn_closed(self, conn: Conn) -> None:
        """Called when a connection ends (the subclass stops a motion its controller left)."""

    def _serve_jobs(self, wait_s: float) -> None:
        """Run the engine's queued jobs for up to wait_s (the subclass owns the engine)."""
        raise NotImplementedError

    def _close_engine(self) -> None:
        """Release the engine after the last job (the subclass's physics client or environment)."""

    def serve(self, server: socket.socket) -> None:
        """Serve until a shutdown request: accept connections on a thread, run the engine's jobs on this one."""
        acceptor = threading.Thread(target=self._accept_loop, args=(server,), name="accept", daemon=True)
        acceptor.start()
        try:
            while not self._shutdown.is_set():
                self._serve_jobs(0.1)
        finally:
            self._shutdown.set()
            acceptor.join(timeout=2.0)
            server.close()
            self._close_engine()

    def _accept_loop(self, server: socket.socket) -> None:
        server.settimeout(0.2)
        while not self._shutdown.is_set():
            try:
                sock, addr = server.accept()
            except TimeoutError:
                continue
            except OSError as e:
                if not self._shutdown.is_set():
                    log.error("accept failed: %s; shutting down", e)  # noqa: TRY400
                    self._shutdown.set()
                return
            conn = Conn(sock, f"{addr[0]}:{addr[1]}")
            with self._state_lock:
                full = len(self._conns) >= MAX_CONNECTIONS
                if not full:
                    self._conns.add(conn)
            if full:
                log.warning("refusing connection from %s: %d connections already open", conn.peer, MAX_CONNECTIONS)
                sock.close()
                continue
            sock.settimeout(AUTH_TIMEOUT_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve_conn, args=(conn,), name=f"conn-{conn.peer}",
                             daemon=True).start()

    def _serve_conn(self, conn: Conn) -> None:
        log.info("connection from %s", conn.peer)
        try:
            while not self._shutdown.is_set():
                try:
                    msg = recv_msg(conn.sock, max_frame_bytes=MAX_FRAME_BYTES[conn.role])
                except ConnectionLostError as e:
                    log.info("connection from %s closed: %s", conn.peer, e)
                    break
                except ProtocolError as e:
                    log.warning("dropping connection from %s: %s", conn.peer, e)
                    break
                conn.last_rx_s, conn.last_rx_step = time.monotonic(), self._motion_steps
                reply = self.handle(conn, msg)
                try:
                    send_msg(conn.sock, reply)
                except ConnectionLostError as e:
                    log.info("connection from %s closed while replying: %s", conn.peer, e)
                    break
                if isinstance(msg, dict) and msg.get("op") == "shutdown" and reply.get("ok"):
                    self._shutdown.set()
                if conn.role is None and not reply.get("ok"):
                    log.warning("dropping unauthenticated connection from %s: %s", conn.peer, reply.get("error"))
                    break
        finally:
            conn.sock.close()
            with self._state_lock:
                self._conns.discard(conn)
                if self._control is conn:
                    self._control = None
            self._conn_closed(conn)

    def handle(self, conn: Conn, msg: Any) -> dict[str, Any]:
        """Answer one request; errors become {"ok": False, "error": ...} and never end the lab."""
        if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
            return {"ok": False, "error": "expected a mapping with a string field 'op'"}
        op = msg["op"]
        if op not in OPS:
            return {"ok": False, "error": f"unknown op {op!r}; expected one of {list(OPS)}"}
        allowed = AUTH_OPS if conn.role is None else ROLE_OPS[conn.role]
        if op not in allowed:
            why = "authenticate first (challenge, auth)" if conn.role is None else \
                f"the {conn.role} role may only {list(allowed)}"
            return {"ok": False, "op": op, "error": f"{op!r} refused: {why}"}
        try:
            return {"ok": True, "op": op, **getattr(self, f"_op_{op}")(conn, msg)}
        except LimitViolation as e:
            return {"ok": False, "op": op, "protective_stop": True, "error": f"protective stop: {e}"}
        except (ValueError, TypeError, KeyError, ProtocolError) as e:
            return {"ok": False, "op": op, "error": f"{type(e).__name__}: {e}"}
        except Exception as e:  # noqa: BLE001 - a bug in one request must not take the "real world" down
            log.exception("request %r failed", op)
            return {"ok": False, "op": op, "error": f"internal lab error: {type(e).__name__}: {e}"}

    def _op_challenge(self, conn: Conn, msg: dict) -> dict[str, Any]:
        conn.nonce = os.urandom(lab_auth.NONCE_BYTES)
        return {"nonce": conn.nonce}

    def _op_auth(self, conn: Conn, msg: dict) -> dict[str, Any]:
        role, client_nonce, nonce = msg.get("role"), msg.get("client_nonce"), conn.nonce
        conn.nonce = None   # one attempt per challenge
        if nonce is None:
            raise ValueError("auth needs a challenge first")
        if role not in ROLE_OPS or not isinstance(client_nonce, bytes) or len(client_nonce) != lab_auth.NONCE_BYTES:
            raise ValueError("auth needs role 'control' or 'evaluate' and a 32-byte client_nonce")
        secret = self._secrets.for_role(role)
        if not lab_auth.verify(lab_auth.client_proof(secret, role, nonce, client_nonce), msg.get("mac")):
            raise ValueError("authentication failed")
        with self._state_lock:
            if role == "control":
                if self._control is not None:
                    raise ValueError(f"another client ({self._control.peer}) controls this lab")
                self._control = conn
            conn.role = role
        conn.sock.settimeout(None if role == "control" else EVAL_IDLE_TIMEOUT_S)
        log.info("%s authenticated for %s", conn.peer, role)
        return {"role": role, "mac": lab_auth.lab_proof(secret, role, nonce, client_nonce)}


def run_lab_process(argv: list[str] | None, prog: str, description: str, tag: str,
                    load_spec: Callable[[str], Any], make_lab: Callable[[Any, int, LabSecrets], LabServer],
                    startup_errors: tuple[type[Exception], ...]) -> int:
    """A lab process's main: --spec, --seed, --port, --host, --secret-fd, --log-level. The lab is
    make_lab(load_spec(--spec), --seed or the spec's .seed, secrets); any of startup_errors: logged, exit 2.
    stdout carries exactly one line, {"port": P}: engines print from C (PyBullet's EGL plugin, robosuite),
    so fd 1 is pointed at stderr and a private copy of the real stdout is kept for that line."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--spec", required=True, help="the lab's spec JSON file")
    parser.add_argument("--seed", type=int, default=None, help="randomisation seed or initial state (default: "
                        "the spec's)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--secret-fd", type=int, required=True,
                        help="inherited file descriptor carrying the session secrets (robot_io.lab_auth)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format=f"%(asctime)s {tag}[%(process)d] %(levelname)s %(message)s")
    sys.stdout.flush()
    port_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        secrets = LabSecrets.read_fd(args.secret_fd)
        spec = load_spec(args.spec)
        lab = make_lab(spec, spec.seed if args.seed is None else args.seed, secrets)
    except (OSError, lab_auth.LabAuthError, *startup_errors) as e:
        log.error("cannot start the lab: %s", e)  # noqa: TRY400 - a bad spec needs no traceback
        return 2
    server = socket.create_server((args.host, args.port))
    port = server.getsockname()[1]
    os.write(port_fd, (json.dumps({"port": port}) + "\n").encode())
    os.close(port_fd)
    log.info("listening on %s:%d", args.host, port)
    lab.serve(server)
    return 0
