"""`antigrounding bench malformed-inputs`: every case of the malformed-input corpus (tests/corpus/) through the
real command, one process per case, with its exit code, wall time and peak resident memory.

The tests check that every case is rejected (exit 2, file and field named, no traceback); this measures what a
rejection costs: the target is under 5 s and 500 MB a case, import time included. From a source checkout (the
corpus is test data).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.fakes import import_from_checkout


def _run(argv: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, float, float, float, str]:
    """(exit code, wall seconds, CPU seconds, peak RSS in MiB, stderr) of `python -m planner.cli ARGV` in its own
    process; the child's own CPU time and peak RSS come from wait4 (Linux reports ru_maxrss in KiB). CPU time
    is what the case costs on an idle machine; wall time also shows how loaded this one is."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "planner.cli", *argv], stdout=subprocess.DEVNULL,
                                stderr=err_file, env=env, text=True)
        deadline = start + timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        err_file.seek(0)
        err = err_file.read()
    return proc.returncode, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, err


def run(args: argparse.Namespace) -> int:
    cases_mod = import_from_checkout("tests.corpus.cases", "tests/corpus/cases.py")
    with tempfile.TemporaryDirectory() as tmp:
        cases = cases_mod.all_cases(Path(tmp))
        if args.tasks:   # --tasks: only the cases whose id contains one of these words
            cases = [c for c in cases if any(word in c.id for word in args.tasks)]
        print(f"Malformed-input corpus: {len(cases)} cases, each through the real command in its own process",
              flush=True)
        rows = []
        for i, case in enumerate(cases):
            code, wall, cpu, rss, err = _run(list(case.argv), cases_mod.tmp_env(case), timeout_s=60.0)
            ok = code == 2 and "Traceback" not in err and cases_mod.named_properly(case, err) is None
            rows.append((case.id, code, wall, rss, ok, cpu))
            print(f"  [{i + 1:3d}/{len(cases)}] {case.id:48s} exit {code}  {wall:5.2f} s wall  {cpu:5.2f} s CPU  "
                  f"{rss:6.0f} MiB"
                  f"{'' if ok else '  NOT REJECTED AS EXPECTED'}", file=sys.stderr, flush=True)
    walls = [r[2] for r in rows]
    rsss = [r[3] for r in rows]
    cpus = [r[5] for r in rows]
    bad = [r[0] for r in rows if not r[4]]
    print(f"\n{'cases':>6s} {'rejected':>9s} {'wall med':>9s} {'wall max':>9s} {'CPU med':>8s} {'CPU max':>8s} "
          f"{'RSS med':>9s} {'RSS max':>9s}")
    print(f"{len(rows):6d} {len(rows) - len(bad):9d} {statistics.median(walls):8.2f}s {max(walls):8.2f}s "
          f"{statistics.median(cpus):7.2f}s {max(cpus):7.2f}s {statistics.median(rsss):6.0f}MiB {max(rsss):6.0f}MiB")
    slowest = max(rows, key=lambda r: r[5])
    largest = max(rows, key=lambda r: r[3])
    print(f"most CPU: {slowest[0]} ({slowest[5]:.2f} s CPU, {slowest[2]:.2f} s wall); largest: {largest[0]} "
          f"({largest[3]:.0f} MiB); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; targets: "
          f"under 5 s and 500 MB a case")
    for case_id in bad:
        print(f"NOT rejected as expected: {case_id}")
    return 0 if not bad else 1
