"""The deployment files hold what running Siyu on Kubernetes needs.

Each overlay under deploy/k8s/overlays is rendered (tests/support/kustomize.py) and every
object is validated against the Kubernetes schemas shipped by kubernetes-validate, strict
(an unknown field fails). Then a policy check over the rendered objects: probes, resources,
security context, disruption budget, autoscaler, spreading, headless gRPC Services, network
policies that allow exactly the calls the code makes, pinned images, no secret values in the
base. The image's Dockerfile and .dockerignore are checked for their rules too.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import pytest
import yaml

from siyu_kit.config import DEFAULT_GRPC_PORTS, SERVICE_NAMES
from siyu_kit.liveness import LIVENESS_SERVICE
from tests.support import kustomize

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "production")
PROCESSES = (*SERVICE_NAMES, "gateway")
# The oldest Kubernetes the manifests are for, and the newest schemas shipped.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
SECRET_KEYS = ("SIYU_JWT_SECRET", "SIYU_DATA_KEY", "SIYU_LOOKUP_KEY", "SIYU_PLATFORM_TOKEN",
               "SIYU_SANDBOX_PAYMENT_SECRET", "SIYU_INTERNAL_KEY")
METRICS_PORT = 9100

# Every object validation loads the same schema files; read each once.
kv_utils.schema_contents = functools.lru_cache(maxsize=None)(kv_utils.schema_contents)


@functools.cache
def rendered(overlay: str) -> tuple[dict, ...]:
    return tuple(kustomize.build(K8S / "overlays" / overlay))


def objects(overlay: str, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in rendered(overlay) if o["kind"] == kind}


def pod_spec(overlay: str, name: str) -> dict:
    return objects(overlay, "Deployment")[name]["spec"]["template"]["spec"]


def container(overlay: str, name: str) -> dict:
    (only,) = pod_spec(overlay, name)["containers"]
    return only


def config(overlay: str) -> dict[str, str]:
    return objects(overlay, "ConfigMap")["siyu"]["data"]


def matches(selector: dict, labels: dict) -> bool:
    """Whether a label selector (matchLabels, matchExpressions In/NotIn/Exists) selects `labels`."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        value, op = labels.get(expr["key"]), expr["operator"]
        if op == "In" and value not in expr["values"]:
            return False
        if op == "NotIn" and value in expr["values"]:
            return False
        if op == "Exists" and expr["key"] not in labels:
            return False
        if op == "DoesNotExist" and expr["key"] in labels:
            return False
    return True


def pod_labels(overlay: str, name: str) -> dict:
    return objects(overlay, "Deployment")[name]["spec"]["template"]["metadata"]["labels"]


# ---- the renderer --------------------------------------------------------------------------

def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return directory


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: web
          env: [{name: A, value: "1"}, {name: B, value: "2"}]
        - name: side
          image: registry.local:5000/side:1.0
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
"""


def test_the_renderer_applies_namespace_labels_images_replicas_and_patches(tmp_path):
    write(tmp_path, {
        "base/kustomization.yaml": "resources: [web.yaml]\n",
        "base/web.yaml": DEPLOYMENT,
        "over/kustomization.yaml": """\
namespace: shop
resources: [../base]
labels: [{pairs: {tier: front}}]
images:
  - {name: web, newName: registry.local:5000/web, newTag: "2.1"}
  - {name: registry.local:5000/side, digest: "sha256:abc"}
replicas: [{name: web, count: 3}]
patches:
  - path: env.yaml
  - target: {kind: Deployment, name: web}
    patch: |-
      - {op: add, path: /spec/minReadySeconds, value: 5}
      - {op: remove, path: /spec/template/spec/containers/1}
secretGenerator:
  - {name: keys, literals: [K=v=1], options: {disableNameSuffixHash: true}}
""",
        "over/env.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
        - name: web
          env: [{name: B, value: "20"}, {name: C, value: "3"}]
""",
    })
    out = {o["kind"]: o for o in kustomize.build(tmp_path / "over")}
    web = out["Deployment"]
    assert web["metadata"]["namespace"] == "shop" and "namespace" not in out["Namespace"]["metadata"]
    assert web["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert web["spec"]["selector"] == {"matchLabels": {"app": "web"}}, "selectors are left alone"
    assert web["spec"]["replicas"] == 3 and web["spec"]["minReadySeconds"] == 5
    (only,) = web["spec"]["template"]["spec"]["containers"]
    assert only["image"] == "registry.local:5000/web:2.1"
    assert only["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]
    assert out["Secret"]["data"] == {"K": "dj0x"} and out["Secret"]["metadata"]["namespace"] == "shop"


def test_the_renderer_sets_a_digest_and_keeps_a_registry_port():
    assert kustomize.split_image("registry.local:5000/side:1.0") == ("registry.local:5000/side", "1.0", "")
    assert kustomize.split_image("registry.local:5000/side") == ("registry.local:5000/side", "", "")
    assert kustomize.split_image("side:1@sha256:ab") == ("side", "1", "sha256:ab")


@pytest.mark.parametrize("extra", [
    "commonLabels: {a: b}\n",
    "configMapGenerator: [{name: c, literals: [A=1]}]\n",  # a hashed name would need renaming references
    "labels: [{pairs: {a: b}, includeSelectors: true}]\n",
    "patches: [{target: {kind: Deployment}, path: p.yaml}]\n",
])
def test_the_renderer_refuses_what_it_does_not_do(tmp_path, extra):
    write(tmp_path, {"kustomization.yaml": "resources: [web.yaml]\n" + extra, "web.yaml": DEPLOYMENT})
    with pytest.raises(kustomize.Unsupported):
        kustomize.build(tmp_path)


# ---- schemas ---------------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_kubernetes_strictly(overlay):
    assert len(rendered(overlay)) > 20
    for obj in rendered(overlay):
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_the_strict_validation_refuses_an_unknown_field():
    deployment = yaml.safe_load(yaml.safe_dump(objects("production", "Deployment")["order"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {"grpc": {"port": 7053}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


# ---- every process -----------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_process_has_a_deployment_and_nothing_else_does(overlay):
    assert set(objects(overlay, "Deployment")) == set(PROCESSES)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", PROCESSES)
def test_probes_see_startup_a_stuck_loop_and_readiness(overlay, name):
    c = container(overlay, name)
    startup, live, ready = c["startupProbe"], c["livenessProbe"], c["readinessProbe"]
    if name == "gateway":
        assert startup["httpGet"]["path"] == live["httpGet"]["path"] == "/healthz"
        assert ready["httpGet"]["path"] == "/readyz"
    else:
        port = DEFAULT_GRPC_PORTS[name]
        # Liveness asks the health service that sees dead consumers and ended tasks, not
        # readiness (which turns NOT_SERVING while MongoDB is away: no restart for that).
        assert startup["grpc"] == live["grpc"] == {"port": port, "service": LIVENESS_SERVICE}
        assert ready["grpc"] == {"port": port}
    # A stuck event loop does not answer: a probe must give up, and more than once.
    assert live["timeoutSeconds"] <= live["periodSeconds"] and live["failureThreshold"] >= 2
    # Startup gets a minute at most before liveness takes over.
    assert startup["periodSeconds"] * startup["failureThreshold"] <= 60


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", PROCESSES)
def test_resources_and_a_drain_before_stopping(overlay, name):
    c = container(overlay, name)
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])
    assert {"cpu", "memory"} <= set(c["resources"]["limits"])
    sleep = c["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep" and int(sleep[1]) >= 5
    # preStop, then the process's own grace (gRPC 5 s + workers 3 s; gateway 10 s), within the period.
    assert pod_spec(overlay, name)["terminationGracePeriodSeconds"] >= int(sleep[1]) + 10


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", PROCESSES)
def test_security_context_is_locked_down(overlay, name):
    pod = pod_spec(overlay, name)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    account = objects(overlay, "ServiceAccount")[pod["serviceAccountName"]]
    assert account["automountServiceAccountToken"] is False
    sc = container(overlay, name)["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] > 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # The one writable place is /tmp, an emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in container(overlay, name)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert list(mounts) == ["/tmp"] and "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", PROCESSES)
def test_replicas_spread_over_nodes_and_zones(overlay, name):
    pod = pod_spec(overlay, name)
    labels = pod_labels(overlay, name)
    terms = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert {t["podAffinityTerm"]["topologyKey"] for t in terms
            if matches(t["podAffinityTerm"]["labelSelector"], labels)} >= {"kubernetes.io/hostname"}
    spread = {c["topologyKey"] for c in pod["topologySpreadConstraints"] if matches(c["labelSelector"], labels)}
    assert "topology.kubernetes.io/zone" in spread


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", PROCESSES)
def test_a_disruption_budget_and_an_autoscaler_per_deployment(overlay, name):
    labels = pod_labels(overlay, name)
    budgets = [p for p in objects(overlay, "PodDisruptionBudget").values() if matches(p["spec"]["selector"], labels)]
    assert len(budgets) == 1 and budgets[0]["apiVersion"] == "policy/v1"
    assert budgets[0]["spec"].get("maxUnavailable") == 1 or budgets[0]["spec"].get("minAvailable")
    scalers = [h for h in objects(overlay, "HorizontalPodAutoscaler").values()
               if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}]
    assert len(scalers) == 1 and scalers[0]["apiVersion"] == "autoscaling/v2"
    replicas = objects(overlay, "Deployment")[name]["spec"]["replicas"]
    assert 2 <= scalers[0]["spec"]["minReplicas"] <= scalers[0]["spec"]["maxReplicas"]
    assert scalers[0]["spec"]["minReplicas"] >= replicas


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_grpc_services_are_headless(overlay, name):
    service = objects(overlay, "Service")[name]
    assert service["spec"]["clusterIP"] == "None", "a ClusterIP pins each gRPC connection to one pod"
    assert matches({"matchLabels": service["spec"]["selector"]}, pod_labels(overlay, name))
    grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert grpc_port["port"] == DEFAULT_GRPC_PORTS[name]
    assert config(overlay)[f"SIYU_{name.upper()}_ADDR"] == f"{name}:{DEFAULT_GRPC_PORTS[name]}"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", PROCESSES)
def test_images_are_pinned_by_the_overlay(overlay, name):
    image = container(overlay, name)["image"]
    image_name, tag, digest = kustomize.split_image(image)
    assert tag or digest, f"{image} is not pinned"
    assert tag != "latest"
    assert image_name == {"dev": "siyu", "production": "registry.example.com/siyu"}[overlay]


def test_the_base_names_the_image_without_a_tag_so_only_overlays_pin_it():
    base = kustomize.build(K8S / "base")
    images = {c["image"] for o in base if o["kind"] == "Deployment" for c in o["spec"]["template"]["spec"]["containers"]}
    assert images == {"siyu"}


# ---- settings and secrets ---------------------------------------------------------------------

def test_the_base_holds_no_secret_values():
    base = kustomize.build(K8S / "base")
    assert [o for o in base if o["kind"] == "Secret"] == []
    for cm in (o for o in base if o["kind"] == "ConfigMap"):
        assert not set(cm["data"]) & {*SECRET_KEYS, "SIYU_MONGODB_URI"}
    text = "\n".join(p.read_text() for p in (K8S / "base").glob("*.yaml"))
    assert "change-me" not in text and "stringData" not in text


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", PROCESSES)
def test_every_process_reads_the_config_and_the_secret(overlay, name):
    sources = container(overlay, name)["envFrom"]
    assert {"configMapRef": {"name": "siyu"}} in sources and {"secretRef": {"name": "siyu-secrets"}} in sources


def test_production_runs_three_of_everything_in_the_production_profile():
    assert config("production")["SIYU_PROFILE"] == "production"
    assert config("production")["SIYU_STREAM_REPLICAS"] == "3"
    assert {n: d["spec"]["replicas"] for n, d in objects("production", "Deployment").items()} == \
        dict.fromkeys(PROCESSES, 3)
    # The operator creates the Secret; the production overlay brings none.
    assert objects("production", "Secret") == {}


def test_dev_runs_in_the_dev_profile_with_a_generated_secret_and_no_real_keys():
    assert config("dev")["SIYU_PROFILE"] == "dev"
    secret = objects("dev", "Secret")["siyu-secrets"]
    # Only where MongoDB and NATS are: the keys keep their development defaults.
    assert set(secret["data"]) == {"SIYU_MONGODB_URI", "SIYU_NATS_URL"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_are_served_to_the_scraper(overlay):
    assert config(overlay)["SIYU_METRICS_PORT"] == str(METRICS_PORT)
    assert config(overlay)["SIYU_METRICS_HOST"] == "0.0.0.0"


# ---- network policies -------------------------------------------------------------------------

CHANNEL_CALL = re.compile(r"""runtime\.channel\(\s*["'](\w+)["']\s*\)""")


def calls_in_code() -> set[tuple[str, str]]:
    """(caller, callee) for every service-to-service channel a service's code opens, and
    the gateway to every service that has a route or that it calls itself."""
    found = set()
    for caller in SERVICE_NAMES:
        for path in (ROOT / "services" / caller).rglob("*.py"):
            found |= {(caller, callee) for callee in CHANNEL_CALL.findall(path.read_text()) if callee != caller}
    from gateway.routes import Table
    found |= {("gateway", route.backend) for route in Table.from_protos().routes}
    for path in (ROOT / "gateway").glob("*.py"):
        found |= {("gateway", callee) for callee in re.findall(r"""\.channel\(\s*["'](\w+)["']\s*\)""",
                                                               path.read_text())}
    return found


def test_the_code_scan_finds_the_calls_it_should():
    calls = calls_in_code()
    assert {("order", "catalog"), ("content", "catalog"), ("member", "order")} <= calls
    assert {("gateway", s) for s in SERVICE_NAMES} <= calls


def policies(overlay: str) -> list[dict]:
    return list(objects(overlay, "NetworkPolicy").values())


def allowed(overlay: str, direction: str) -> set[tuple[str, str, int]]:
    """(from, to, port) between Siyu processes the policies allow in one direction."""
    key, peer_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    found = set()
    for policy in policies(overlay):
        spec = policy["spec"]
        if direction not in spec["policyTypes"]:
            continue
        for selected in (n for n in PROCESSES if matches(spec["podSelector"], pod_labels(overlay, n))):
            for rule in spec.get(key) or []:
                ports = [p["port"] for p in rule.get("ports") or []] or [None]
                peers = rule.get(peer_key)
                for other in PROCESSES:
                    in_namespace = [p for p in peers or [] if set(p) == {"podSelector"}]
                    if peers is None or any(matches(p["podSelector"], pod_labels(overlay, other)) for p in in_namespace):
                        for port in ports:
                            found.add((other, selected, port) if direction == "Ingress" else (selected, other, port))
    return found


def expected_paths() -> set[tuple[str, str, int]]:
    return {(caller, callee, DEFAULT_GRPC_PORTS[callee]) for caller, callee in calls_in_code()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_is_denied_unless_allowed(overlay):
    deny = [p for p in policies(overlay) if p["spec"]["podSelector"] == {}
            and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert len(deny) == 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_accept_calls_only_along_paths_the_code_takes(overlay):
    ingress = {(a, b, port) for a, b, port in allowed(overlay, "Ingress") if b in SERVICE_NAMES}
    assert ingress == expected_paths()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_processes_call_only_along_paths_the_code_takes(overlay):
    egress = {(a, b, port) for a, b, port in allowed(overlay, "Egress") if b in PROCESSES}
    assert egress == expected_paths()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rules_open_to_any_source_are_the_gateway_http_port_only(overlay):
    for policy in policies(overlay):
        for rule in policy["spec"].get("ingress") or []:
            if rule.get("from") is None:
                assert matches(policy["spec"]["podSelector"], pod_labels(overlay, "gateway"))
                assert [p["port"] for p in rule["ports"]] == [8080]
                assert not any(matches(policy["spec"]["podSelector"], pod_labels(overlay, s)) for s in SERVICE_NAMES)


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", PROCESSES)
def test_metrics_scraping_and_dns_are_allowed(overlay, name):
    labels = pod_labels(overlay, name)
    mine = [p["spec"] for p in policies(overlay) if matches(p["spec"]["podSelector"], labels)]
    scrape = [r for s in mine for r in s.get("ingress") or []
              if any(p["port"] == METRICS_PORT for p in r.get("ports") or [])]
    assert scrape and all(all("namespaceSelector" in peer for peer in r["from"]) for r in scrape)
    dns = [r for s in mine for r in s.get("egress") or [] if any(p["port"] == 53 for p in r.get("ports") or [])]
    assert {p["protocol"] for r in dns for p in r["ports"]} == {"UDP", "TCP"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_data_and_wechat_egress_go_only_to_who_needs_them(overlay):
    def egress_ports(name):
        labels = pod_labels(overlay, name)
        return {p["port"] for pol in policies(overlay) if matches(pol["spec"]["podSelector"], labels)
                for r in pol["spec"].get("egress") or [] for p in r.get("ports") or []
                if any("ipBlock" in peer or "namespaceSelector" in peer for peer in r["to"])}
    for name in SERVICE_NAMES:
        assert {27017, 4222} <= egress_ports(name)
    assert 27017 not in egress_ports("gateway") and 4222 in egress_ports("gateway")
    assert {n for n in PROCESSES if 443 in egress_ports(n)} == {"member", "order"}


# ---- the image ----------------------------------------------------------------------------------

DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
DEV_TOOLS = ("grpcio-tools", "grpc_tools", "pytest", "hypothesis", "ruff", "buf", "nx-27017", "nats-server",
             "schemathesis", "requirements-dev")


def stages() -> dict[str, str]:
    """Each stage's instructions (continuations joined), by the stage's name."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    found = {}
    for chunk in re.split(r"(?m)^(?=FROM )", text)[1:]:
        name = re.match(r"FROM \S+ AS (\S+)", chunk).group(1)
        found[name] = chunk
    return found


def test_the_base_image_is_pinned_to_a_patch_release():
    base = re.search(r"(?m)^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE).group(1)
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    for line in re.findall(r"(?m)^FROM .*$", DOCKERFILE):
        assert line.startswith("FROM ${PYTHON_IMAGE} AS "), line
    assert "latest" not in DOCKERFILE


def test_the_runtime_stage_runs_as_a_numeric_non_root_user_and_writes_no_bytecode():
    runtime = list(stages().values())[-1]
    users = re.findall(r"(?m)^USER (\S+)$", runtime)
    assert users and re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1])
    assert "PYTHONDONTWRITEBYTECODE=1" in runtime
    # Bytecode is compiled at build time, so a read-only root costs no start-up time.
    assert "compileall" in stages()["build"]


def test_the_runtime_stage_has_no_dev_tools_and_copies_only_what_runs():
    runtime = list(stages().values())[-1]
    for tool in DEV_TOOLS:
        assert tool not in runtime, tool
    assert "pip install" not in runtime and "apt-get" not in runtime
    assert re.search(r"(?m)^COPY \.\s", runtime) is None
    build = stages()["build"]
    assert "-r requirements.txt" in build and "requirements-dev" not in build
    assert re.search(r"(?m)^COPY \.\s", build) is None


def requirement_pins(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            package, _, version = line.partition("==")
            assert version, f"{name}: {line} is not pinned"
            pins[package.lower().replace("_", "-")] = version
    return pins


def test_run_time_requirements_hold_no_tools_and_every_pin_agrees_with_the_constraints():
    runtime, dev, constraints = (requirement_pins(n) for n in ("requirements.txt", "requirements-dev.txt",
                                                               "constraints.txt"))
    assert not set(runtime) & set(dev)
    assert {"grpcio-tools", "pytest", "ruff", "kubernetes-validate"} <= set(dev)
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()
    for package, version in {**runtime, **dev}.items():
        assert constraints.get(package) == version, package


def test_the_build_context_leaves_out_local_state():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "var", "build", "gen", "tests", "**/__pycache__", ".pytest_cache"} <= ignored
