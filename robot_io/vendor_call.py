"""Deadlines around vendor client calls, and trust in robot state only while its timestamp is fresh.

Vendor clients (ur_rtde, franky, the xArm SDK) block inside C++ or socket code: ur_rtde's moveJ waits up to
300 s for a reply that a cut cable never sends, and its state getters keep answering with the last packet
after the link died. A driver therefore (1) runs every vendor call on one worker thread and waits for it
with a deadline (`VendorWorker.call`), and (2) accepts a state only if the controller's own timestamp moved
recently (`FreshState`). A call that misses its deadline leaves the worker wedged: the driver must treat
the link as lost (the worker is a daemon thread, so a hung C++ call cannot keep the process alive).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from robot_io.errors import ConnectionLostError

log = logging.getLogger(__name__)


class VendorWorker:
    """One daemon thread that runs vendor calls in order; `call` waits for each with a deadline.

    `idle(fn, period_s)` installs a function run whenever the worker has had nothing to do for `period_s`
    (a watchdog kick), so that it never races a command on the same client.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.Queue = queue.Queue()
        self._idle_fn: Callable[[], Any] | None = None
        self._idle_period_s = 0.05
        self.wedged: str | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"vendor-{name}", daemon=True)
        self._thread.start()

    def idle(self, fn: Callable[[], Any] | None, period_s: float = 0.05) -> None:
        self._idle_fn, self._idle_period_s = fn, period_s

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        if self._closed:
            raise ConnectionLostError(f"{self.name}: the vendor worker is closed")
        fut: Future = Future()
        self._jobs.put((fut, fn, args))
        return fut

    def call(self, what: str, fn: Callable[..., Any], *args: Any, timeout_s: float) -> Any:
        """Run fn(*args) on the worker; raise ConnectionLostError if it has not returned within timeout_s."""
        if self.wedged is not None:
            raise ConnectionLostError(f"{self.name}: an earlier call ({self.wedged}) never returned; reconnect")
        fut = self.submit(fn, *args)
        fn = args = None   # this frame ends up in a raised error's traceback: it must not hold the client
        try:
            return fut.result(timeout=timeout_s)
        except TimeoutError:
            self.wedged = what
            raise ConnectionLostError(
                f"{self.name}: {what} did not return within {timeout_s:.2f} s (link down or controller hung)"
            ) from None

    def close(self) -> None:
        self._closed = True
        self._jobs.put(None)

    def _run(self) -> None:
        last_job = time.monotonic()
        while True:
            try:
                item = self._jobs.get(timeout=self._idle_period_s)
            except queue.Empty:
                item = ()
            if item is None:
                return
            if item == ():
                fn = self._idle_fn
                if fn is not None and time.monotonic() - last_job >= self._idle_period_s:
                    try:
                        fn()
                    except Exception as e:  # noqa: BLE001 - an idle kick must never kill the worker
                        log.warning("%s: idle call failed: %s", self.name, e)
                continue
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the caller through the future
                fut.set_exception(e)
            # A raised exception's traceback holds this frame: were `fn` (a bound method of the vendor client) left
            # in it, the client would outlive disconnect for as long as the caller keeps the error, holding the
            # controller's single connection (franka-sim then never answered the next connect).
            item = fut = fn = args = None
            last_job = time.monotonic()


class FreshState:
    """Tracks a controller timestamp and says how long ago (on this machine's clock) it last moved.

    `update(stamp)` is fed whatever the vendor client reports; `age_s()` is the local time since that value
    last changed. A frozen stamp means the client is replaying its last packet: the link is gone.
    """

    def __init__(self) -> None:
        self._stamp: float | None = None
        self._seen_at = time.monotonic()

    def update(self, stamp: float) -> float:
        now = time.monotonic()
        if stamp != self._stamp:
            self._stamp, self._seen_at = stamp, now
        return now - self._seen_at

    def age_s(self) -> float:
        return time.monotonic() - self._seen_at


def run_with_deadline(fn: Callable[[], Any], timeout_s: float, name: str = "vendor-cleanup") -> bool:
    """Run fn() on a fresh daemon thread; True if it returned (or raised) within timeout_s.

    For cleanup (disconnect) after the link died, when the driver's worker may be wedged in a dead call.
    """
    done = threading.Event()

    def target() -> None:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - cleanup of a dead link: log and go on
            log.warning("%s: %s", name, e)
        finally:
            done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    return done.wait(timeout_s)
