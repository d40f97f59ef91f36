"""`make run` ports: outside the ephemeral range, and a taken one is named with its holder."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from siyu_kit.devstack import DEFAULT_PORTS, Stack, free_port


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except OSError:
        return 32768, 60999  # Linux's default


def test_fixed_ports_lie_outside_the_ephemeral_range():
    low, high = ephemeral_range()
    inside = {name: port for name, port in DEFAULT_PORTS.items() if low <= port <= high}
    assert inside == {}


def test_a_port_held_by_an_outgoing_connection_is_named_with_its_holder(tmp_path):
    # A connection's local end occupies a port that nothing listens on: the case that
    # stopped `make run` with a bind error in a log file.
    with socket.create_server(("127.0.0.1", 0)) as server, socket.socket() as client:
        client.bind(("127.0.0.1", 0))
        taken = client.getsockname()[1]
        client.connect(server.getsockname())
        stack = Stack(tmp_path, {"member": taken})
        with pytest.raises(RuntimeError) as info:
            stack.check_ports_free()
    message = str(info.value)
    assert f"port {taken} (member) is taken" in message
    assert f"pid {os.getpid()}" in message
    assert "ESTABLISHED" in message


def test_a_listening_port_is_named_too(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"port {port} \\(gateway\\) is taken: a server listens there"):
            Stack(tmp_path, {"gateway": port}).check_ports_free()


def test_free_ports_pass(tmp_path):
    Stack(tmp_path, {"gateway": free_port()}).check_ports_free()
