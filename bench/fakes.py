"""Reaching the test fakes (tests/fakes/: the stub VLM server, demo scenes) from a benchmark.

They are test code, not product code: they exist in a source checkout, not in an installed wheel. A benchmark
that needs one imports it through `import_fake`, which finds `tests.fakes` when the checkout's root is on the
path (`python -m pytest`, `python -c` from the root) and otherwise loads the one file from the checkout this
`bench` package sits in; without a checkout it says so (exit 2, no traceback).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import configs


def import_fake(name: str) -> ModuleType:
    """The module tests/fakes/<name>.py."""
    qualified = f"tests.fakes.{name}"
    try:
        return importlib.import_module(qualified)
    except ModuleNotFoundError as exc:
        if exc.name not in ("tests", "tests.fakes", qualified):
            raise
    path = Path(__file__).resolve().parent.parent / "tests" / "fakes" / f"{name}.py"
    if not path.is_file():
        raise configs.InputError(None, "bench", f"a source checkout with tests/fakes/{name}.py (this benchmark "
                                 "uses a test fake)", configs.Said("an installed package without tests/"))
    spec = importlib.util.spec_from_file_location(qualified, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module
