"""franky-sim (MuJoCo) as a separate process, with a record of what its Franka server received.

Run: `python tests/fakes/franky_sim_process.py --hostname 127.x.y.z`. It prints {"ready": true, ...} on stdout,
then answers JSON lines on stdin: {"op": "state"} -> the simulated joint positions and, for every joint
position command that arrived over libfranka's UDP protocol, counts of non-finite values, values outside the
FR3 joint limits, and the largest step between consecutive commands; {"op": "quit"}. The recording subclass
only reads the decoded command before franky-sim's own handler runs; the simulation is franky-sim's, unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

import numpy as np

FR3_LOWER = np.array([-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159])
FR3_UPPER = np.array([2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hostname", required=True)

    args = ap.parse_args(argv)

    import franky_sim.simulation_server as ss
    from franky_sim.franka_robot_protocol import UDPCommand
    from franky_sim.mujoco_simulator import MujocoSimulator

    lock = threading.Lock()
    rec = {"commands": 0, "non_finite": 0, "outside_limits": 0, "max_step_rad": 0.0}
    last: list[np.ndarray] = []

    class RecordingServer(ss.FrankaRobotServer):
        def _handle_udp_command(self, command_data: bytes):
            cmd = UDPCommand.from_bytes(command_data)
            q = np.array(cmd.q_c, dtype=float)
            if cmd.message_id > 0 and not (cmd.motion_generation_finished or cmd.torque_command_finished) \
                    and q.shape == (7,) and np.any(q != 0):
                with lock:
                    rec["commands"] += 1
                    if not np.all(np.isfinite(q)):
                        rec["non_finite"] += 1
                    else:
                        if np.any(q < FR3_LOWER) or np.any(q > FR3_UPPER):
                            rec["outside_limits"] += 1
                        if last:
                            rec["max_step_rad"] = max(rec["max_step_rad"], float(np.max(np.abs(q - last[0]))))
                        last[:] = [q]
            return super()._handle_udp_command(command_data)

    ss.FrankaRobotServer = RecordingServer
    with MujocoSimulator() as sim:
        robot = sim.add_robot()
        with ss.SimulationServer(sim, hostname_candidates=[args.hostname]) as server:
            server.run_async()
            print(json.dumps({"ready": True, "hostname": robot.hostname}), flush=True)
            for line in sys.stdin:
                op = json.loads(line).get("op")
                if op == "quit":
                    break
                if op == "state":
                    try:
                        q = [float(v) for v in robot.state.q]
                    except Exception as err:  # the simulation has not published a state yet: say so, stay up
                        out = {"error": f"no state yet: {type(err).__name__}: {err}"}
                    else:
                        with lock:
                            out = {"q": q, "received": dict(rec)}
                else:
                    out = {"error": f"unknown op {op!r}"}
                print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
