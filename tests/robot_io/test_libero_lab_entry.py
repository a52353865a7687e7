"""The LIBERO lab's process entry (`python -m robot_io.libero.lab`, through `robot_io.lab_server.run_lab_process`,
shared with the sim lab): a bad start exits 2 with one log line and prints nothing on stdout, which carries only
the port line. These fail before LIBERO is imported, so they run in the planner's venv."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from robot_io.lab_auth import LabSecrets


def _start(tmp_path, spec_text: str | None, secrets_line: bytes | None = None) -> subprocess.CompletedProcess:
    spec = tmp_path / "spec.json"
    if spec_text is not None:
        spec.write_text(spec_text)
    r, w = os.pipe()
    os.write(w, LabSecrets.generate().to_line() if secrets_line is None else secrets_line)
    os.close(w)
    try:
        return subprocess.run([sys.executable, "-m", "robot_io.libero.lab", "--spec", str(spec), "--secret-fd", str(r)],
                              pass_fds=(r,), capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    finally:
        os.close(r)


@pytest.mark.parametrize("spec_text, says", [
    (None, "No such file"),                                # no spec file
    ('{"suite": "libero_object"}', "cannot start the lab"),  # a spec without its fields
])
def test_bad_spec_exits_2_without_a_port_line(tmp_path, spec_text, says):
    out = _start(tmp_path, spec_text)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stdout == ""
    assert "cannot start the lab" in out.stderr and says in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_secrets_exit_2(tmp_path):
    out = _start(tmp_path, "{}", secrets_line=b"not the secrets\n")
    assert out.returncode == 2
    assert out.stdout == ""
    assert "session secrets" in out.stderr
