"""A raw protocol client for tests that talk to the sim lab directly (bypassing SimRobot and its envelope)."""

import socket

from robot_io import lab_auth
from robot_io.protocol import recv_msg, send_msg


def ask(sock, msg, timeout_s=10.0):
    """Send one request and return the reply, whatever it says."""
    send_msg(sock, msg, timeout_s=timeout_s)
    return recv_msg(sock, timeout_s=timeout_s)


def request(sock, msg, timeout_s=10.0):
    """Send one request and return the reply; it must be ok."""
    reply = ask(sock, msg, timeout_s)
    assert reply["ok"], reply
    return reply


def connect(lab, role=None, secret=None, timeout_s=10.0):
    """A socket to the lab, authenticated for `role` ("control"/"evaluate") with the lab's secret (or `secret`)."""
    sock = socket.create_connection((lab.host, lab.port), timeout=timeout_s)
    if role is not None:
        key = secret if secret is not None else lab.secrets.for_role(role)
        lab_auth.authenticate(lambda m: request(sock, m, timeout_s), key, role)
    return sock
