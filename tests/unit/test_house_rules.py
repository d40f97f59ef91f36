"""House rules about who may import whom, read from the source (no module is imported):

- the shared kit (siyu_kit) imports nothing from scripts/ or services/;
- the modules of siyu_kit, services and gateway import each other without cycles;
- a service's domain/ and application/ never import its adapters/ (they declare ports).
"""
from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("siyu_kit", "services", "gateway")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(*packages: str) -> dict[str, Path]:
    return {module_name(path): path for package in packages for path in sorted((ROOT / package).rglob("*.py"))}


def imported(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The dotted names an import statement names: `import a.b` → a.b; `from a import b` →
    a.b and a (b may be a module or a name in a); relative imports resolved."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[:len(package) - node.level + 1]
        base = ".".join(filter(None, [*package, base]))
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def all_imports(module: str, path: Path) -> list[tuple[int, str]]:
    """Every import in the file, wherever it is (module level or inside a function)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [(node.lineno, name) for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
            for name in imported(module, path, node)]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(module: str, path: Path) -> list[str]:
    """The imports that run when the module is imported: top-level statements, including
    those under a top-level if/try, but not functions' imports or `if TYPE_CHECKING:`."""
    found: list[str] = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.extend(imported(module, path, node))
            elif isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    visit(block)
    visit(ast.parse(path.read_text(), filename=str(path)).body)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports at module level."""
    modules = project_modules(*PACKAGES)
    return {module: {name for name in module_level_imports(module, path) if name in modules and name != module}
            for module, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module
    (Tarjan's algorithm, iteratively), each as a path a → b → … → a."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return [_cycle_through(graph, set(component)) for component in components]


def _cycle_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself, inside it."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    return paths[node] + [start]
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle in {sorted(component)}")


def describe(found: list[list[str]]) -> str:
    return "; ".join(" → ".join(cycle) for cycle in found)




def test_the_kit_imports_nothing_from_scripts_or_services():
    offending = [f"{module} (line {line}) imports {name}"
                 for module, path in project_modules("siyu_kit").items()
                 for line, name in all_imports(module, path)
                 if name.split(".")[0] in ("scripts", "services")]
    assert offending == []


def test_the_cycle_finder_reports_each_cycle_once():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": {"g"}, "g": {"f"}}
    assert cycles(graph) == [["a", "b", "c", "a"], ["f", "g", "f"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_relative_and_from_imports():
    graph = import_graph()
    assert "siyu_kit.config" in graph["gateway.app"]
    assert "siyu_kit.config" in graph["siyu_kit.events.streams"]


def test_no_import_cycles():
    found = cycles(import_graph())
    assert found == [], f"import cycles: {describe(found)}"


def test_domain_and_application_never_import_adapters():
    offending = []
    for module, path in project_modules("services").items():
        parts = module.split(".")
        if len(parts) < 4 or parts[2] not in ("domain", "application"):
            continue
        offending += [f"{module} (line {line}) imports {name}" for line, name in all_imports(module, path)
                      if "adapters" in name.split(".")]
    assert offending == [], "\n".join(offending)


# Storage, transport and wire formats belong to the adapters and the entrypoint: the rules
# and use cases are tested without them.
INFRASTRUCTURE = ("pymongo", "mongoengine", "grpc", "nats", "google.protobuf", "siyu", "siyu_kit.db",
                  "siyu_kit.repository", "siyu_kit.events.outbox", "siyu_kit.grpc_server")


def test_domain_and_application_use_no_storage_transport_or_wire_format():
    offending = []
    for module, path in project_modules("services").items():
        parts = module.split(".")
        if len(parts) < 4 or parts[2] not in ("domain", "application"):
            continue
        offending += [f"{module} (line {line}) imports {name}" for line, name in all_imports(module, path)
                      if any(name == banned or name.startswith(banned + ".") for banned in INFRASTRUCTURE)]
    assert offending == [], "\n".join(offending)
