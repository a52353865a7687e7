"""The corpus of malformed inputs (issue 15): task, robot, camera and scoring files, and command lines."""
