"""Reaching test code (tests/fakes/: the stub VLM server, demo scenes; tests/corpus/) from a benchmark.

It is test code, not product code: it exists in a source checkout, not in an installed wheel. A benchmark that
needs it imports it here: `tests` is imported when the checkout's root is on the path (pytest, `python -c` from
the root); otherwise the one file is loaded from the checkout this `bench` package sits in; without a checkout
the error says so (exit 2, no traceback).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import configs


def import_from_checkout(module: str, relative_path: str) -> ModuleType:
    """The test module `module` (e.g. tests.fakes.stub_server), file `relative_path` of the checkout."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        parents = {".".join(module.split(".")[: i + 1]) for i in range(module.count(".") + 1)}
        if exc.name not in parents:
            raise
    path = Path(__file__).resolve().parent.parent / relative_path
    if not path.is_file():
        raise configs.InputError(None, "bench", f"a source checkout with {relative_path} (this benchmark uses "
                                 "test code)", configs.Said("an installed package without tests/"))
    spec = importlib.util.spec_from_file_location(module, path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded
    spec.loader.exec_module(loaded)
    return loaded


def import_fake(name: str) -> ModuleType:
    """The module tests/fakes/<name>.py."""
    return import_from_checkout(f"tests.fakes.{name}", f"tests/fakes/{name}.py")
