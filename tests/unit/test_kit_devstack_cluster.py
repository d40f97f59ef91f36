"""The test stack on a NATS cluster: services are given every node, a client one node it
can connect to, and everything it starts runs in the dev profile."""
from __future__ import annotations

from siyu_kit.devstack import Stack


def cluster_stack(tmp_path) -> Stack:
    ports = {"mongo": 14017, "nats-1": 14001, "nats-2": 14002, "nats-3": 14003, "gateway": 14080, "wechat": 14090,
             "catalog": 14051, "member": 14052, "order": 14053, "content": 14054}
    return Stack(tmp_path, ports, nats_nodes=["nats-1", "nats-2", "nats-3"])


def test_services_are_given_every_node_of_the_cluster(tmp_path, monkeypatch):
    monkeypatch.delenv("NATS_URL", raising=False)
    stack = cluster_stack(tmp_path)
    assert stack.env()["SIYU_NATS_URL"] == "nats://127.0.0.1:14001,nats://127.0.0.1:14002,nats://127.0.0.1:14003"
    # nats-py takes a list, not a comma-separated string: a client gets one node.
    assert stack.nats_url == "nats://127.0.0.1:14001"
    assert stack.nats_servers == stack.env()["SIYU_NATS_URL"].split(",")


def test_a_comma_separated_nats_url_from_outside_is_split(tmp_path, monkeypatch):
    monkeypatch.setenv("NATS_URL", "nats://node-a:4223, nats://node-b:4224,nats://node-c:4225")
    stack = Stack(tmp_path, {"nats": 4222})
    assert stack.nats_servers == ["nats://node-a:4223", "nats://node-b:4224", "nats://node-c:4225"]
    assert stack.nats_url == "nats://node-a:4223"


def test_everything_the_stack_starts_is_in_the_dev_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("SIYU_PROFILE", "production")
    assert cluster_stack(tmp_path).env()["SIYU_PROFILE"] == "dev"
