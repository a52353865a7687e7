"""Request value types and the backend registry."""

import json
import math

import numpy as np
import pytest

from scoring import backend as backend_module
from scoring.backend import AgentConfig, Backend, backend_class, make_backend, register_backend
from scoring.errors import BackendError
from scoring.request import CandidateEvidence, ScoreRequest, ViewImage


def test_view_image_normalises_numpy_endpoints_and_hides_png_from_dicts():
    view = ViewImage(
        "front", b"png-bytes", 64, 48, {np.int64(1): (np.float32(3.5), np.float64(4.0)), 2: None}
    )
    assert view.endpoints_px == {1: (3.5, 4.0), 2: None}
    assert type(next(iter(view.endpoints_px))) is int
    data = json.loads(json.dumps(view.to_dict()))
    assert data["endpoints_px"] == {"1": [3.5, 4.0], "2": None}
    assert "png" not in data and len(data["png_sha256"]) == 64
    assert view.contains((0, 0)) and not view.contains((64, 10)) and not view.contains(None)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name=""), "name: expected a non-empty string"),
        (dict(width=0), "width: expected a positive integer"),
        (dict(endpoints_px={1: (1.0,)}), r"endpoints_px\[1\]: expected \(u, v\) or None"),
        (dict(endpoints_px={1: (math.nan, 2.0)}), r"endpoints_px\[1\]\.u: expected a finite number"),
        (dict(endpoints_px={"1": (1.0, 2.0)}), "endpoints_px key: expected an integer candidate id"),
    ],
)
def test_view_image_rejects(kwargs, message):
    fields = dict(name="front", png=b"", width=64, height=48, endpoints_px={}) | kwargs
    with pytest.raises(ValueError, match=message):
        ViewImage(**fields)


@pytest.mark.parametrize(
    "override, message",
    [
        (dict(progress=1.5), "progress: expected a number in \\[0, 1\\]"),
        (dict(collisions=-1), "collisions: expected an integer >= 0"),
        (dict(feasible=1), "feasible: expected true or false"),
        (dict(gripper="grab"), "gripper: expected one of"),
        (dict(ik_error_m=math.nan), "ik_error_m: expected a finite number"),
        (dict(min_clearance_m=-math.inf), "min_clearance_m: expected a number or \\+inf"),
    ],
)
def test_candidate_evidence_rejects(evidence, override, message):
    with pytest.raises(ValueError, match=message):
        evidence(1, **override)


def test_candidate_evidence_accepts_numpy_and_infinite_clearance(evidence):
    ev = evidence(np.int64(3), feasible=np.bool_(True), collisions=np.int32(0), min_clearance_m=math.inf)
    assert isinstance(ev, CandidateEvidence)
    assert ev.id == 3 and ev.feasible is True and ev.collisions == 0
    assert json.loads(json.dumps(ev.to_dict(), allow_nan=False))["min_clearance_m"] is None


def test_score_request_checks_consistency(view, evidence):
    ok = dict(instruction="stack", subtask="", candidate_ids=(1, 2), views=(view(),))
    with pytest.raises(ValueError, match="ids must be unique"):
        ScoreRequest(**(ok | dict(candidate_ids=(1, 1))))
    with pytest.raises(ValueError, match="view names must be unique"):
        ScoreRequest(**(ok | dict(views=(view(), view()))))
    with pytest.raises(ValueError, match=r"ids \[3\] are not in candidate_ids"):
        ScoreRequest(**(ok | dict(views=(view(endpoints={3: (1, 1)}),))))
    with pytest.raises(ValueError, match="holds evidence for candidate 2"):
        ScoreRequest(**(ok | dict(evidence={1: evidence(2)})))
    with pytest.raises(ValueError, match="expected non-empty text"):
        ScoreRequest(**(ok | dict(instruction=" ")))
    request = ScoreRequest(**(ok | dict(candidate_ids=[2, 1], evidence={2: evidence(2)})))
    assert request.candidate_ids == (2, 1)
    assert json.loads(json.dumps(request.to_dict()))["evidence"]["2"]["id"] == 2
    with pytest.raises(KeyError, match="no view 'side'"):
        request.view("side")


def test_agent_config_copies_params_and_validates():
    params = {"noise_std": 1.0}
    agent = AgentConfig("a", "simjudge", params=params)
    params["noise_std"] = 9.0
    assert agent.params == {"noise_std": 1.0}
    with pytest.raises(ValueError, match="backend: expected a non-empty string"):
        AgentConfig("a", "")
    with pytest.raises(ValueError, match="params: expected a mapping"):
        AgentConfig("a", "simjudge", params=[1])


def test_register_backend_class_and_lazy_path(monkeypatch):
    monkeypatch.setattr(backend_module, "BACKENDS", dict(backend_module.BACKENDS))

    class Echo(Backend):
        name = "echo"

        def __init__(self, text="{}"):
            self.text = text

        def answer(self, request, view, agent):
            return self.text

    register_backend("echo", Echo)
    assert make_backend("echo", text="hi").text == "hi"
    with pytest.raises(ValueError, match="already registered"):
        register_backend("echo", Echo)
    register_backend("broken-path", "scoring.nonexistent:Thing")
    with pytest.raises(BackendError, match="cannot be loaded"):
        backend_class("broken-path")
    register_backend("not-a-backend", "json:dumps")
    with pytest.raises(BackendError, match="not a Backend subclass"):
        backend_class("not-a-backend")
