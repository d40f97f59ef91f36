"""Starts the whole suite on this machine: the embedded MongoDB-protocol server
(nx-27017), nats-server with JetStream, the local WeChat stand-in (wechat_standin), the
four services and the gateway, each a real process on a loopback port. `make run` and the tests both use it.

    python -m siyu_kit.devstack run       # fixed ports, data kept under var/, no data added

`run(seed=...)` takes the step that fills a ready suite with data; `make run` passes the
demo merchant's (scripts/run.py), so the kit itself knows nothing of the demo data.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from siyu_kit import profiling
from siyu_kit.config import SERVICE_NAMES

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Every fixed port lies below Linux's ephemeral range (32768–60999 by default): a port in
# that range can be taken at any moment as the local end of an outgoing connection.
DEFAULT_PORTS = {"mongo": 27117, "nats": 4322, "gateway": 8080, "wechat": 8090,
                 "catalog": 7051, "member": 7052, "order": 7053, "content": 7054,
                 # each service's Prometheus endpoint
                 "catalog_metrics": 9151, "member_metrics": 9152, "order_metrics": 9153,
                 "content_metrics": 9154}


# Suites on free ports (the tests, the bench) listen below the ephemeral range as well, so
# an outgoing connection opened meanwhile cannot take a port between its choice and the
# server's bind; and below `make run`'s fixed ports, so the two can run side by side. Each
# test worker draws from its own block, and a process never hands out a port twice.
FREE_PORTS = range(10_000, 27_000)
_handed_out: set[int] = set()
_cursor = random.randrange(1 << 30)  # another run's servers may still hold the first ports


@functools.cache
def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _worker_block() -> range:
    """This test worker's share of FREE_PORTS (pytest-xdist names workers gw0, gw1, …)."""
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:]
    index = int(worker) % workers if worker.isdigit() else 0
    size = len(FREE_PORTS) // workers
    return range(FREE_PORTS.start + index * size, FREE_PORTS.start + (index + 1) * size)


def free_port() -> int:
    """A loopback port nothing listens on now, not handed out before by this process."""
    global _cursor
    if _ephemeral_low() <= FREE_PORTS.stop:  # an unusual kernel setting: let it choose
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    block = _worker_block()
    for _ in range(len(block)):
        port = block[_cursor % len(block)]
        _cursor += 1
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port left in {block.start}–{block.stop - 1}")


def wait_for_port(port: int, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on {port} within {timeout}s")


@dataclass
class Stack:
    data_dir: Path
    ports: dict[str, int]
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    # The server names of a NATS cluster started by `start_nats_cluster` (also their
    # process names); empty for the single nats-server.
    nats_nodes: list[str] = field(default_factory=list)

    @classmethod
    def on_free_ports(cls, data_dir: Path, **extra_env: str) -> "Stack":
        return cls(data_dir, {name: free_port() for name in DEFAULT_PORTS}, dict(extra_env))

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def metrics_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[f'{service}_metrics']}/metrics"

    @property
    def wechat_url(self) -> str:
        """The local WeChat stand-in, which the services reach instead of api.weixin.qq.com."""
        return f"http://127.0.0.1:{self.ports['wechat']}"

    @property
    def mongodb_uri(self) -> str:
        return os.environ.get("MONGODB_URI") or f"mongodb://127.0.0.1:{self.ports['mongo']}"

    @property
    def nats_servers(self) -> list[str]:
        """Every NATS client URL: one server, each node of a cluster started here, or the
        comma-separated NATS_URL. Services get them all (SIYU_NATS_URL) and fail over."""
        if os.environ.get("NATS_URL"):
            return [u.strip() for u in os.environ["NATS_URL"].split(",") if u.strip()]
        if self.nats_nodes:
            return [f"nats://127.0.0.1:{self.ports[node]}" for node in self.nats_nodes]
        return [f"nats://127.0.0.1:{self.ports['nats']}"]

    @property
    def nats_url(self) -> str:
        """One server URL for a client (`nats.connect` takes a list, not a comma-separated
        string): a live node of a cluster started here; the client learns the other nodes
        from it and reconnects to them."""
        if self.nats_nodes and not os.environ.get("NATS_URL"):
            live = self._live_nats_nodes()
            return f"nats://127.0.0.1:{self.ports[live[0] if live else self.nats_nodes[0]]}"
        return self.nats_servers[0]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "SIYU_MONGODB_URI": self.mongodb_uri,
            "SIYU_NATS_URL": ",".join(self.nats_servers),
            "SIYU_GATEWAY_PORT": str(self.ports["gateway"]),
            "SIYU_WECHAT_BASE_URL": self.wechat_url,
            "SIYU_WECHAT_PAY_BASE_URL": self.wechat_url,
            "SIYU_WECHAT_PAY_NOTIFY_URL": f"http://127.0.0.1:{self.ports['gateway']}/v1/payments/wechat/notify",
            "PYTHONUNBUFFERED": "1",
            # Everything this module starts is development: its secrets are the dev defaults.
            "SIYU_PROFILE": "dev",
        })
        for name in SERVICE_NAMES:
            env[f"SIYU_{name.upper()}_ADDR"] = f"127.0.0.1:{self.ports[name]}"
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        logs = self.data_dir / "log"
        logs.mkdir(parents=True, exist_ok=True)
        out = open(logs / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, cwd=ROOT, env=env or self.env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_infra(self) -> None:
        if not os.environ.get("MONGODB_URI"):
            self.start_mongo()
        if not os.environ.get("NATS_URL"):
            self.start_nats()

    def start_mongo(self) -> None:
        """The embedded MongoDB-protocol server; its data survives a restart."""
        mongo_dir = self.data_dir / "mongo"
        mongo_dir.mkdir(parents=True, exist_ok=True)
        # Under `make bench ARGS="--profile …"` it runs with the profiler's signals armed.
        program = ([str(BIN / "python"), "-m", "siyu_kit.profiling", "nx-27017"] if self.env().get(profiling.ENV)
                   else [str(BIN / "nx-27017")])
        proc = self._spawn("mongo", [*program, "--data-dir", str(mongo_dir), "--host", "127.0.0.1",
                                     "-p", str(self.ports["mongo"]),
                                     "--log-file", str(self.data_dir / "log" / "mongo-server.log"),
                                     "--pid-file", str(self.data_dir / "mongo.pid")])
        wait_for_port(self.ports["mongo"], 30, "nx-27017", proc)

    def start_nats(self) -> None:
        """nats-server with JetStream; its streams survive a restart."""
        nats_dir = self.data_dir / "nats"
        nats_dir.mkdir(parents=True, exist_ok=True)
        proc = self._spawn("nats", [str(BIN / "nats-server"), "-js", "-sd", str(nats_dir), "-a", "127.0.0.1",
                                    "-p", str(self.ports["nats"])])
        wait_for_port(self.ports["nats"], 30, "nats-server", proc)

    def start_nats_cluster(self, n: int = 3, timeout: float = 30) -> None:
        """`n` nats-server processes joined by cluster routes, each with JetStream, its own
        store and server name (`nats-1`…); returns once the cluster has a JetStream meta
        leader, so services starting next can create replicated streams."""
        self.plan_nats_cluster(n)
        for node in self.nats_nodes:
            self.start_nats_node(node)
        self.wait_nats_meta_leader(timeout)

    def plan_nats_cluster(self, n: int = 3) -> None:
        """Name the nodes and give each its ports, without starting any."""
        self.nats_nodes = [f"nats-{i}" for i in range(1, n + 1)]
        for node in self.nats_nodes:
            for suffix in ("", "_route", "_monitor"):
                self.ports.setdefault(f"{node}{suffix}", free_port())

    def start_nats_node(self, node: str) -> None:
        """Start (or restart, on its data) one node of the cluster."""
        store = self.data_dir / node
        store.mkdir(parents=True, exist_ok=True)
        routes = ",".join(f"nats://127.0.0.1:{self.ports[f'{other}_route']}" for other in self.nats_nodes)
        proc = self._spawn(node, [str(BIN / "nats-server"), "-js", "-sd", str(store), "-a", "127.0.0.1",
                                  "-p", str(self.ports[node]), "-n", node, "--cluster_name", "siyu",
                                  "--cluster", f"nats://127.0.0.1:{self.ports[f'{node}_route']}",
                                  "--routes", routes, "-m", str(self.ports[f"{node}_monitor"])])
        wait_for_port(self.ports[node], 30, node, proc)

    def _jsz(self, node: str, query: str = "") -> dict:
        url = f"http://127.0.0.1:{self.ports[f'{node}_monitor']}/jsz{query}"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.load(resp)

    def _live_nats_nodes(self) -> list[str]:
        return [n for n in self.nats_nodes if n in self.procs and self.procs[n].poll() is None]

    def nats_meta_leader(self) -> str:
        """The node leading JetStream's meta group, or "" while there is none."""
        for node in self._live_nats_nodes():
            try:
                leader = (self._jsz(node).get("meta_cluster") or {}).get("leader", "")
            except OSError:
                continue
            if leader:
                return leader
        return ""

    def wait_nats_meta_leader(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.nats_meta_leader()
            if leader:
                return leader
            time.sleep(0.1)
        raise TimeoutError(f"the NATS cluster elected no JetStream meta leader within {timeout}s")

    def stream_leader(self, stream: str) -> str:
        """The node leading `stream` (as `js.stream_info(stream).cluster.leader` says), or ""."""
        for node in self._live_nats_nodes():
            try:
                info = self._jsz(node, "?accounts=true&streams=true")
            except OSError:
                continue
            for account in info.get("account_details") or []:
                for detail in account.get("stream_detail") or []:
                    leader = (detail.get("cluster") or {}).get("leader", "")
                    if detail.get("name") == stream and leader:
                        return leader
        return ""

    def start_wechat(self) -> None:
        """The local WeChat stand-in: WeChat's documented endpoints, in memory."""
        proc = self._spawn("wechat", [sys.executable, "-m", "wechat_standin", "--port", str(self.ports["wechat"])])
        wait_for_port(self.ports["wechat"], 30, "the WeChat stand-in", proc)

    def service_env(self, name: str) -> dict[str, str]:
        return {**self.env(), "SIYU_METRICS_PORT": str(self.ports[f"{name}_metrics"])}

    def start_service(self, name: str, extra_env: dict[str, str] | None = None) -> None:
        self._spawn(name, [sys.executable, "-m", f"services.{name}"], {**self.service_env(name), **(extra_env or {})})

    def start_gateway(self) -> None:
        self._spawn("gateway", [sys.executable, "-m", "gateway"])

    def start_all(self) -> None:
        self.check_ports_free()
        self.start_infra()
        self.start_wechat()
        for name in SERVICE_NAMES:
            self.start_service(name)
        self.start_gateway()

    def wait_ready(self, timeout: float = 60) -> float:
        """Wait until the gateway's /healthz/deps says every service is SERVING."""
        started = time.monotonic()
        deadline = started + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.data_dir}/log/{name}.log")
            try:
                with urllib.request.urlopen(f"{self.gateway_url}/healthz/deps", timeout=2) as resp:
                    if resp.status == 200:
                        return time.monotonic() - started
            except Exception as error:  # noqa: BLE001 - not ready yet
                last = repr(error)
            time.sleep(0.1)
        raise TimeoutError(f"suite not ready within {timeout}s: {last}")

    def wait_services_serving(self, names: list[str], timeout: float = 60) -> None:
        """Wait until each named service's gRPC health says SERVING."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + timeout
        for name in names:
            with grpc.insecure_channel(f"127.0.0.1:{self.ports[name]}") as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                while True:
                    proc = self.procs.get(name)
                    if proc is not None and proc.poll() is not None:
                        raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.data_dir}/log/{name}.log")
                    try:
                        if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                                health_pb2.HealthCheckResponse.SERVING:
                            break
                    except grpc.RpcError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{name} not SERVING within {timeout}s")
                    time.sleep(0.1)

    def stop(self, name: str, timeout: float = 15) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self, name: str) -> None:
        """SIGKILL: the process dies wherever it is, as in a crash."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        """Stop the gateway and services together, then the servers they depend on."""
        servers = ["wechat", "nats", *self.nats_nodes, "mongo"]
        apps = [n for n in self.procs if n not in servers]  # the gateway, services and their replicas
        for name in apps:
            if self.procs[name].poll() is None:
                self.procs[name].send_signal(signal.SIGTERM)
        for name in [*apps, *servers]:
            self.stop(name)

    def check_ports_free(self) -> None:
        """Refuse to start on a port something else holds, naming the port and the holder:
        a server listening there (another Siyu would answer instead) or a connection whose
        local end took it."""
        wanted = dict(self.ports)
        if os.environ.get("MONGODB_URI"):
            wanted.pop("mongo")
        if os.environ.get("NATS_URL"):
            wanted.pop("nats")
        for name, port in wanted.items():
            problem = port_problem(port)
            if problem:
                raise RuntimeError(f"port {port} ({name}) is taken: {problem}")


def port_problem(port: int) -> str:
    """Why `port` cannot be bound on 127.0.0.1, or "" when it can."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            return f"a server listens there ({holder_of(port) or 'unknown process'}); is another Siyu running?"
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as error:
            return f"{holder_of(port) or 'unknown holder'} ({error.strerror})"
    return ""


_TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}


def holder_of(port: int) -> str:
    """Which process holds a TCP socket on local `port`, read from /proc (Linux); "" if unknown."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
            if int(local.rsplit(":", 1)[1], 16) == port:
                sockets[inode] = (f"local :{port} → remote :{int(remote.rsplit(':', 1)[1], 16)}",
                                  _TCP_STATES.get(state, state))
    if not sockets:
        return ""
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            for fd in (proc_dir / "fd").iterdir():
                link = os.readlink(fd)
                inode = link[8:-1] if link.startswith("socket:[") else ""
                if inode in sockets:
                    where, state = sockets[inode]
                    command = (proc_dir / "comm").read_text().strip()
                    return f"held by pid {proc_dir.name} ({command}), {where} {state}"
        except OSError:
            continue
    where, state = next(iter(sockets.values()))
    return f"held by a socket of another user or a closed process, {where} {state}"


Seeder = Callable[["Stack"], Iterable[str]]
"""Fills a ready suite with data through the services' APIs; returns the lines to show
the user (keys, logins, an example request)."""


def run(seed: Seeder | None = None) -> None:
    """Start everything on the default ports with data under var/, run `seed` once the
    suite is ready, and serve until Ctrl-C (or SIGTERM) or until a process exits."""
    data_dir = ROOT / "var"
    stack = Stack(data_dir, dict(DEFAULT_PORTS))
    started = time.monotonic()

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C, and a SIGTERM from a supervisor, both stop every process we started.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        stack.start_all()
        stack.wait_ready(timeout=120)
        ready_s = time.monotonic() - started
        shown = list(seed(stack)) if seed is not None else []
        print(f"\nSiyu is ready in {ready_s:.1f}s at {stack.gateway_url}  (logs: {data_dir}/log)")
        print(f"API docs: {stack.gateway_url}/docs   OpenAPI: {stack.gateway_url}/openapi.json")
        print("Metrics: " + ", ".join(f"{name} {stack.metrics_url(name)}" for name in SERVICE_NAMES))
        for line in shown:
            print(line)
        print("Ctrl-C stops everything; data stays under var/.", flush=True)
        while all(p.poll() is None for p in stack.procs.values()):
            time.sleep(0.5)
        dead = [n for n, p in stack.procs.items() if p.poll() is not None]
        print(f"stopped: {', '.join(dead)} exited; see {data_dir}/log", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
    except (RuntimeError, TimeoutError) as error:
        print(f"siyu: {error}", file=sys.stderr)
        sys.exit(1)
    finally:
        stack.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(prog="siyu-devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start everything on the default ports (`make run` also seeds the demo merchant)")
    args = parser.parse_args()
    if args.command == "run":
        run()


if __name__ == "__main__":
    main()
