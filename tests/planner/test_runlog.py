import json
import os

from planner.report import write_report
from planner.runlog import RunLog, read_records


def test_log_survives_a_torn_last_line(tmp_path):
    log = RunLog.create(str(tmp_path), "stack blocks", 3)
    log.write_header({"task": "stack_blocks", "seed": 3, "instruction": "stack", "scorer": "simjudge"})
    img = log.save_image(0, "front", b"\x89PNG fake")
    log.append({"type": "step", "step": 0, "images": {"front": img}, "chosen": 2,
                "candidates": [{"id": 2, "S": 7.5, "feasible": True}], "value": float("nan")})
    log.close()
    with open(os.path.join(log.path, "steps.jsonl"), "a") as f:
        f.write('{"type": "step", "step": 1, "chos')       # killed mid-write
    records = read_records(log.path)
    assert len(records) == 1 and records[0]["chosen"] == 2 and records[0]["value"] is None
    report = write_report(log.path)
    text = open(report).read()
    assert "incomplete" in text and "step_000/front.png" in text and "7.50" in text
    assert os.path.basename(log.path).endswith("-stack_blocks-s3")


def test_every_line_is_json(tmp_path):
    log = RunLog(str(tmp_path / "run"))
    for k in range(3):
        log.append({"type": "step", "step": k})
    log.append({"type": "end", "steps": 3, "lab_success": True, "error": None, "time_s": 1.0})
    log.close()
    lines = open(tmp_path / "run" / "steps.jsonl").read().splitlines()
    assert [json.loads(x)["type"] for x in lines] == ["step", "step", "step", "end"]
    assert "SUCCESS" in open(write_report(log.path)).read()
