"""`require_range` / `require_positive`: the driver configs' one range check, in the words the loader turns into
file / field / expected / got."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from robot_io.driver_config import DriverConfigError, load_driver_config, require_positive, require_range


@dataclass(frozen=True)
class _Cfg:
    gain: float = 300.0
    wait_s: float = 0.0
    rate_hz: float = 100.0

    def __post_init__(self) -> None:
        require_range(self, "gain", 100, 2000, lo_open=False, note="(UR's range)")
        require_range(self, "wait_s", 0, lo_open=False)
        require_positive(self, "rate_hz")


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("gain", 99.0, "expected in [100, 2000] (UR's range), got 99.0"),
    ("gain", 2000.5, "expected in [100, 2000] (UR's range), got 2000.5"),
    ("wait_s", -0.1, "expected >= 0, got -0.1"),
    ("rate_hz", 0.0, "expected > 0, got 0.0"),
])
def test_out_of_range_names_file_field_expected_and_got(tmp_path, field, value, expected):
    path = tmp_path / "my.yaml"
    path.write_text(f"{field}: {value}\n")
    with pytest.raises(DriverConfigError, match=r"my\.yaml: field '" + field + "': " + expected.replace("[", r"\[")
                       .replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        load_driver_config(_Cfg, path)


def test_bounds_are_inclusive_or_exclusive_as_asked():
    assert _Cfg(gain=100, wait_s=0.0).gain == 100                      # closed ends accepted
    with pytest.raises(ValueError, match=r"_Cfg\.rate_hz must be > 0, got 0"):
        _Cfg(rate_hz=0)
    with pytest.raises(ValueError, match="got nan"):
        _Cfg(wait_s=math.nan)                                         # non-finite is never in range
    with pytest.raises(ValueError, match=r"must be < 1, got 1"):
        require_range(_Cfg(gain=1000), "gain", None, 1, hi_open=True)
