"""Fixtures for the scoring tests: evidence, views and requests built from a few numbers."""

import pytest

from scoring.request import CandidateEvidence, ScoreRequest, ViewImage

# A clean, feasible, unfinished candidate; tests override one field at a time.
BASE_EVIDENCE = dict(
    feasible=True,
    collisions=0,
    min_clearance_m=0.10,
    joint_limit_margin_rad=0.5,
    ik_error_m=0.0,
    path_length_m=0.3,
    duration_s=2.0,
    progress=0.5,
    subtask_done=False,
    task_success=False,
    gripper="keep",
)


PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def direct_localhost(monkeypatch):
    """Clients talk to the stub on 127.0.0.1 directly, whatever proxy this machine has."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def evidence():
    def make(cid, **overrides):
        return CandidateEvidence(id=cid, **{**BASE_EVIDENCE, **overrides})

    return make


@pytest.fixture
def view():
    def make(name="front", endpoints=None, width=640, height=480):
        return ViewImage(
            name=name, png=b"\x89PNG fake", width=width, height=height, endpoints_px=endpoints or {}
        )

    return make


@pytest.fixture
def spread_endpoints():
    """End points 100 px apart, all inside a 640x480 image, for ids 1..n."""

    def make(ids):
        return {cid: (50.0 + 100.0 * i, 200.0) for i, cid in enumerate(ids)}

    return make


@pytest.fixture
def request_with(view, spread_endpoints):
    def make(evidence_list, view_names=("front", "top")):
        ids = tuple(ev.id for ev in evidence_list)
        views = tuple(view(name, spread_endpoints(ids)) for name in view_names)
        return ScoreRequest(
            instruction="Put the red block on the blue block.",
            subtask="grasp the red block",
            candidate_ids=ids,
            views=views,
            evidence={ev.id: ev for ev in evidence_list},
        )

    return make
