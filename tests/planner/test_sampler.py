import math

import numpy as np
import pytest

from planner.sampler import AnnealedSampler, SamplerConfig, downward, tcp_yaw
from sim.geometry import Pose

DOWN = Pose.from_xyz_rpy_deg((0, 0, 0), (180, 0, 0))


def _sampler(seed=0, **kw):
    return AnnealedSampler(SamplerConfig(**kw), DOWN, (0.2, -0.45, 0.0), (0.8, 0.45, 0.55),
                           np.random.default_rng(seed))


def test_radius_follows_the_formula():
    cfg = SamplerConfig(radius0_m=0.2, radius_min_m=0.02, lambda_r=0.5)
    for t in (0, 1, 4, 10):
        assert cfg.radius_m(t) == pytest.approx(0.02 + 0.18 * math.exp(-0.5 * t))
    assert cfg.yaw_spread_deg(0) == pytest.approx(cfg.yaw0_deg)


def test_goals_stay_in_the_annealed_ball_and_point_down():
    s = _sampler()
    tcp = downward((0.5, 0.0, 0.3), 0.3, DOWN)
    for _ in range(6):
        cands = s.propose(tcp, gripper_open=True)
        r = s.config.radius_m(s.t)
        assert len(cands) == s.config.n_candidates and cands[0].gripper == "close"
        for c in cands:
            assert np.linalg.norm(c.goal.position - tcp.position) <= r + 1e-9
            assert c.goal.rotation()[2, 2] == pytest.approx(-1.0, abs=1e-9)   # TCP z points down
            assert abs(tcp_yaw(c.goal, DOWN) - 0.3) <= math.radians(s.config.yaw_spread_deg(s.t)) + 1e-9
        s.advance()


def test_reset_restores_the_initial_radius():
    s = _sampler()
    for _ in range(5):
        s.advance()
    assert s.t == 5
    s.reset()
    assert s.t == 0


def test_reset_restarts_the_annealing_from_scratch():
    """What a subtask change or a diagnosed failure (no_progress included: planner.mpc resets the sampler when a
    failure sends the plan back) must undo: the step count (radius and yaw spread back to R_0 and yaw0), the
    remembered good directions, and the grasp narrowing's focus."""
    tcp = downward((0.5, 0.0, 0.3), 0.0, DOWN)
    s = _sampler(seed=3, experience_share=1.0, n_candidates=200)
    first = s.propose(tcp, True)
    s.remember(tcp, first, {c.id: (10.0 if c.goal.position[1] - tcp.position[1] > 0.05 else 0.1) for c in first})
    s.anchored.focus = "a focus left from the last round"
    for _ in range(8):
        s.advance()
    late = s.propose(tcp, True)[1:]
    r_late = s.config.radius_m(s.t)
    assert max(np.linalg.norm(c.goal.position - tcp.position) for c in late) <= r_late + 1e-9
    assert np.mean([c.goal.position[1] > tcp.position[1] for c in late]) > 0.8   # drawn from the memory
    s.reset()
    assert s.t == 0 and s.anchored.focus is None
    fresh = s.propose(tcp, True)[1:]
    dist = np.array([np.linalg.norm(c.goal.position - tcp.position) for c in fresh])
    assert dist.max() <= s.config.radius0_m + 1e-9 and dist.max() > 2 * r_late   # the ball is wide again
    dy = np.array([c.goal.position[1] for c in fresh]) - tcp.position[1]
    assert abs(dy.mean()) < 0.02   # no memory: directions are symmetric again


def test_experience_biases_directions():
    tcp = downward((0.5, 0.0, 0.3), 0.0, DOWN)
    biased, plain = (_sampler(seed=1, experience_share=1.0, n_candidates=200) for _ in range(2))
    first = biased.propose(tcp, True)
    # reward only moves towards +y
    scores = {c.id: (10.0 if c.goal.position[1] - tcp.position[1] > 0.05 else 0.1) for c in first}
    biased.remember(tcp, first, scores)
    dy_biased = np.array([c.goal.position[1] for c in biased.propose(tcp, True)[1:]]) - tcp.position[1]
    dy_plain = np.array([c.goal.position[1] for c in plain.propose(tcp, True)[1:]]) - tcp.position[1]
    # unbiased draws are symmetric about the TCP (mean ~0 +- 0.01 for 199 draws in a 0.18 m ball)
    assert abs(dy_plain.mean()) < 0.02
    assert dy_biased.mean() > 0.05 and (dy_biased > 0).mean() > 0.8


def test_goals_clamped_to_workspace_and_above_table():
    s = _sampler(radius0_m=0.5)
    tcp = downward((0.25, 0.4, 0.02), 0.0, DOWN)
    for c in s.propose(tcp, False):
        assert 0.2 <= c.goal.position[0] <= 0.8 and -0.45 <= c.goal.position[1] <= 0.45
        assert c.goal.position[2] >= s.config.min_tcp_z_m


def test_config_validation():
    with pytest.raises(ValueError, match="n_candidates"):
        SamplerConfig(n_candidates=1)
    with pytest.raises(ValueError, match="radius_min_m"):
        SamplerConfig(radius0_m=0.01, radius_min_m=0.02)


def test_stay_candidate_can_be_left_out():
    tcp = downward((0.5, 0.0, 0.3), 0.0, DOWN)
    with_stay = _sampler().propose(tcp, gripper_open=True)
    without = _sampler().propose(tcp, gripper_open=True, stay=False)
    assert with_stay[0].label == "stay and close"
    assert len(without) == len(with_stay) and all(c.label != "stay and close" for c in without)
    assert [c.id for c in without] == list(range(len(without)))
    assert all(np.linalg.norm(c.goal.position - tcp.position) > 1e-6 for c in without)
