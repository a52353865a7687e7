"""The malformed-input corpus (tests/corpus/): every case is rejected with exit 2, its file and field (or flag)
named, and no traceback.

All cases go through `planner.cli.run_cli`, the entry the `antigrounding` process uses, in this process (a
subprocess per case would cost seconds each); a sample goes through the real command as a subprocess. Time per
case is reported in the terminal summary, never asserted (speed belongs to benchmarks: `antigrounding bench
malformed-inputs` runs every case as its own process and reports its wall time and peak RSS).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from planner.cli import run_cli
from tests.conftest import REPO
from tests.corpus.cases import CORPUS, KINDS, all_cases, named_properly, tmp_env

FILE_IDS = [f"{kind}/{path.stem}" for kind in KINDS for path in sorted((CORPUS / kind).glob("*.yaml"))]
FLAG_NAMES = [line.split("name: ", 1)[1].split(",", 1)[0] for line in (CORPUS / "flags.yaml").read_text().splitlines()
              if line.startswith("- {name: ")]
IDS = FILE_IDS + [f"flags/{n}" for n in FLAG_NAMES]
SAMPLE = ["task/001-alias-bomb", "task/006-not-utf8", "task/055-urdf-traversal", "robot/014-home-outside-limits",
          "camera/001-huge", "scoring/002-key-under-weights", "flags/candidates-one", "flags/out-is-a-file"]
MEASURED: dict[str, float] = {}


def test_the_corpus_is_large_enough():
    assert len(IDS) >= 150 and set(SAMPLE) <= set(IDS)


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    import planner.episode  # noqa: F401  (the heavy imports once, before any case is timed)

    built = {c.id: c for c in all_cases(tmp_path_factory.mktemp("corpus"))}
    assert sorted(built) == sorted(IDS)
    return built


@pytest.mark.parametrize("case_id", IDS)
def test_rejected_with_exit_2_naming_file_and_field(case_id, cases, capsys, monkeypatch):
    case = cases[case_id]
    for key in ("ANTIGROUNDING_RENDERER", "ANTIGROUNDING_CONFIG_DIR"):
        monkeypatch.delenv(key, raising=False)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    start = time.perf_counter()
    try:
        code = run_cli(list(case.argv))
    except SystemExit as exc:   # argparse's own rejections (a flag that is not an integer, an unknown command)
        code = exc.code
    MEASURED[case_id] = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    problem = named_properly(case, err)
    assert problem is None, problem


@pytest.mark.parametrize("case_id", SAMPLE)
def test_the_real_command_rejects_a_sample(case_id, cases):
    case = cases[case_id]
    proc = subprocess.run([sys.executable, "-m", "planner.cli", *case.argv], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=tmp_env(case))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout.strip() == ""
    problem = named_properly(case, proc.stderr)
    assert problem is None, problem


def test_zz_report_times(capsys):
    """Not a check: the per-case times of the in-process run, in the terminal (after the cases above)."""
    if not MEASURED:
        pytest.skip("no case ran in this session")
    slowest = max(MEASURED.items(), key=lambda kv: kv[1])
    line = (f"malformed-input corpus: {len(MEASURED)} cases in process, {sum(MEASURED.values()):.1f} s in all; "
            f"slowest {slowest[0]} {slowest[1]:.2f} s")
    with capsys.disabled():
        print("\n" + line)
    assert all(t >= 0 for t in MEASURED.values())
