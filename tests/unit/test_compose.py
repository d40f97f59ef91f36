"""deploy/compose.yaml: the default servers are ready only after a one-shot init, and the
`cluster` profile is a 3-node JetStream cluster with routes and a 3-member replica set
that an init job waits on until a primary is elected."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_default_replica_set_is_initiated_by_a_one_shot_others_wait_for():
    all_services = services()
    default = {n: s for n, s in all_services.items() if not s.get("profiles")}
    assert {"mongo", "mongo-init", "nats"} <= set(default)
    init = default["mongo-init"]
    assert init.get("restart") == "no"
    assert "rs.initiate" in " ".join(init["command"]) and "isWritablePrimary" in " ".join(init["command"])
    # Mongo's own healthcheck only pings: initiating is not raced by a healthcheck.
    assert "initiate" not in " ".join(default["mongo"]["healthcheck"]["test"])
    assert default["nats"]["depends_on"]["mongo-init"]["condition"] == "service_completed_successfully"
    assert "-js" in default["nats"]["command"]


def test_the_cluster_profile_runs_three_nats_nodes_routed_to_each_other():
    nodes = {n: s for n, s in services().items() if s.get("profiles") == ["cluster"] and "nats" in s["image"]
             and "-js" in (s.get("command") or [])}
    assert len(nodes) == 3
    route_ports = {flag(s["command"], "--cluster").rsplit(":", 1)[1] for s in nodes.values()}
    assert len(route_ports) == 3
    names = {flag(s["command"], "-n") for s in nodes.values()}
    assert len(names) == 3
    for node in nodes.values():
        routes = {r.rsplit(":", 1)[1] for r in flag(node["command"], "--routes").split(",")}
        assert routes == route_ports
        assert flag(node["command"], "--cluster_name") == "siyu"
        assert "healthcheck" in node


def test_the_cluster_profile_runs_a_three_member_replica_set_with_an_init_job():
    all_services = services()
    members = {n: s for n, s in all_services.items() if s.get("profiles") == ["cluster"]
               and "mongo" in s["image"] and "--replSet" in (s.get("command") or [])}
    assert len(members) == 3
    assert {flag(s["command"], "--replSet") for s in members.values()} == {"rs0"}
    ports = {flag(s["command"], "--port") for s in members.values()}
    init = all_services["mongo-cluster-init"]
    assert init["profiles"] == ["cluster"] and init.get("restart") == "no"
    script = " ".join(init["command"])
    assert set(re.findall(r"127\.0\.0\.1:(\d+)", script)) == ports
    assert "PRIMARY" in script  # exits only once a primary is elected
    assert {n: d["condition"] for n, d in init["depends_on"].items()} == {n: "service_healthy" for n in members}
    ready = all_services["cluster-ready"]
    assert ready["depends_on"]["mongo-cluster-init"]["condition"] == "service_completed_successfully"
    assert "leader" in " ".join(ready["command"])


def test_the_comment_shows_how_to_run_the_suite_against_the_cluster():
    text = COMPOSE.read_text()
    assert re.search(r"MONGODB_URI=mongodb://127\.0\.0\.1:27018,127\.0\.0\.1:27019,127\.0\.0\.1:27020/\?replicaSet=rs0",
                     text)
    assert re.search(r"NATS_URL=nats://127\.0\.0\.1:4223,nats://127\.0\.0\.1:4224,nats://127\.0\.0\.1:4225", text)
    assert "make test" in text


def test_anything_running_siyu_there_is_in_the_dev_profile():
    servers = ("mongo:", "nats:")
    for name, service in services().items():
        if not service.get("image", "").startswith(servers):
            assert (service.get("environment") or {}).get("SIYU_PROFILE") == "dev", name
