"""Outcomes of an estimate against the truth (reconstruction/accuracy.py)."""

import math

import pytest

from reconstruction.accuracy import count_outcomes, format_counts, outcome, pose_errors
from sim.geometry import Pose


def test_pose_errors_are_symmetry_aware():
    truth = Pose.from_xyz_rpy_deg((0.5, 0.0, 0.025), (0, 0, 10))
    est = Pose.from_xyz_rpy_deg((0.503, 0.004, 0.025), (0, 0, 100))
    t_mm, r_deg = pose_errors(est, truth, "cube")
    assert t_mm == pytest.approx(5.0) and r_deg == pytest.approx(0.0, abs=1e-6)
    assert pose_errors(est, truth, "none")[1] == pytest.approx(90.0)


@pytest.mark.parametrize("found,low,t,r,expected", [
    (True, False, 3.0, 2.0, "found"), (True, True, 3.0, 2.0, "found"), (True, False, 25.0, 2.0, "wrong"),
    (True, False, 3.0, 21.0, "wrong"), (True, True, 30.0, 90.0, "doubtful"), (False, False, math.nan, math.nan,
                                                                               "missing"),
    (True, False, math.nan, math.nan, "wrong")])
def test_outcomes(found, low, t, r, expected):
    assert outcome(found, low, t, r) == expected


def test_counts():
    counts = count_outcomes(["found", "found", "wrong", "missing"])
    assert counts == {"found": 2, "doubtful": 0, "wrong": 1, "missing": 1}
    assert "found 2/4 (50.0%)" in format_counts(counts) and "wrongly placed 1" in format_counts(counts)
    with pytest.raises(ValueError, match="expected one of"):
        count_outcomes(["lost"])
