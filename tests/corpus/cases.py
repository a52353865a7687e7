"""The malformed-input corpus as runnable cases: each names the command line that feeds it to `antigrounding`
and the field (or flag, or YAML line) the error must name.

Files: tests/corpus/<kind>/NNN-name.yaml, whose first line is `# expect: FIELD` (`line` for an error the YAML
reader finds, `(top level)` for a file that is not a mapping). A task file is run as `reconstruct --task FILE`;
a robot or camera file through a task that names it (`robot: FILE`, `cameras: [FILE]`); a scoring config as
`run --task stack_blocks --scoring-config FILE`. Command lines: tests/corpus/flags.yaml. Add a case for every
input bug found.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CORPUS = Path(__file__).resolve().parent
KINDS = ("task", "robot", "camera", "scoring")
SHIPPED_TASK = CORPUS.parent.parent / "configs" / "tasks" / "stack_blocks.yaml"


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    argv: tuple[str, ...]
    expect: str                 # the field, flag or "line" the message must name
    file: str | None = None     # the file the message must name (None: a flag)
    env: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.name}"


def _expect(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    match = re.match(r"# expect: (.+)$", first)
    if not match:
        raise ValueError(f"{path}: first line must be '# expect: FIELD'")
    return match.group(1).strip()


def _wrapper(tmp: Path, kind: str, case_file: Path) -> Path:
    task = yaml.safe_load(SHIPPED_TASK.read_text())
    if kind == "robot":
        task["robot"] = str(case_file)
    else:
        task["cameras"] = [str(case_file)]
    out = tmp / "wrappers" / f"{kind}-{case_file.stem}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(task))
    return out


def file_cases(tmp: Path) -> list[Case]:
    """Every corpus file as a case; wrapper tasks (robot, camera) are written under tmp."""
    cases = []
    for kind in KINDS:
        for path in sorted((CORPUS / kind).glob("*.yaml")):
            expect = _expect(path)
            if kind == "task":
                argv = ("reconstruct", "--task", str(path))
            elif kind == "scoring":
                argv = ("run", "--task", "stack_blocks", "--scoring-config", str(path), "--no-ray", "--no-cache",
                        "--quiet", "--out", str(tmp / "runs"))
            else:
                argv = ("reconstruct", "--task", str(_wrapper(tmp, kind, path)))
            cases.append(Case(kind, path.stem, argv, expect, str(path)))
    return cases


def flag_cases(tmp: Path) -> list[Case]:
    """The command lines of flags.yaml, with their placeholders filled in under tmp."""
    a_file = tmp / "a_file.txt"
    a_file.write_text("not an image, not a folder\n")
    a_dir = tmp / "a_dir"
    a_dir.mkdir(exist_ok=True)
    fill = {"{file}": str(a_file), "{dir}": str(a_dir), "{missing}": str(tmp / "no_such_thing"),
            "{out}": str(tmp / "runs")}
    cases = []
    for entry in yaml.safe_load((CORPUS / "flags.yaml").read_text()):
        argv = []
        for arg in entry["argv"]:
            for key, value in fill.items():
                arg = arg.replace(key, value)
            argv.append(arg)
        cases.append(Case("flags", entry["name"], tuple(argv), entry["expect"], None, dict(entry.get("env", {}))))
    return cases


def all_cases(tmp: Path) -> list[Case]:
    return file_cases(tmp) + flag_cases(tmp)


def named_properly(case: Case, stderr: str) -> str | None:
    """None when stderr names the case's file and field (or flag) in one error line; else what is wrong."""
    lines = [line for line in stderr.splitlines() if "error" in line]
    if not lines:
        return "no error line"
    line = lines[-1]
    if case.file is not None:
        if f"{case.file}:" not in line:
            return f"the file is not named: {line}"
        rest = line.split(f"{case.file}:", 1)[1].strip()
        if case.expect == "line":
            ok = rest.startswith("line ")
        elif case.expect == "(top level)":
            ok = rest.startswith("expected ")
        else:
            ok = rest.startswith(f"field '{case.expect}'")
        return None if ok else f"expected the field {case.expect!r} named: {line}"
    return None if case.expect in line else f"expected {case.expect!r} named: {line}"


def tmp_env(case: Case) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANTIGROUNDING_RENDERER", "ANTIGROUNDING_CONFIG_DIR")}
    env.update(case.env)
    return env
