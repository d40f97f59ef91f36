"""Ports: `make run`'s and the free ones the tests and the bench draw lie outside the
ephemeral range, and a taken one is named with its holder."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from siyu_kit import devstack
from siyu_kit.devstack import DEFAULT_PORTS, FREE_PORTS, Stack, free_port


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


def test_free_ports_lie_below_the_ephemeral_range_and_apart_from_the_fixed_ones():
    low, _ = ephemeral_range()
    assert FREE_PORTS.stop <= low
    assert not set(DEFAULT_PORTS.values()) & set(FREE_PORTS)


def test_each_test_worker_draws_from_its_own_block(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    blocks = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        blocks.append(set(devstack._worker_block()))
        assert free_port() in blocks[-1]
    assert blocks[0] and blocks[1] and not blocks[0] & blocks[1]
    assert blocks[0] | blocks[1] <= set(FREE_PORTS)


def test_a_port_is_handed_out_once_and_a_listened_one_is_passed_over(monkeypatch):
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == 200

    with socket.socket() as taken:
        # Listen on a port not yet handed out, and point the cursor at it.
        for i, port in enumerate(devstack._worker_block()):
            if port in devstack._handed_out:
                continue
            try:
                taken.bind(("127.0.0.1", port))
            except OSError:
                continue
            monkeypatch.setattr(devstack, "_cursor", i)
            break
        taken.listen()
        assert free_port() not in {taken.getsockname()[1], *ports}
