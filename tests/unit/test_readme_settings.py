"""Every SIYU_* environment variable the code reads is in the README's configuration
table, with its default and its meaning.

A variable is read when its full name appears in the code or the deployment files, when
it is the name given to one of the kit's readers in siyu_kit/config.py (`_env("NATS_URL",
…)`, `env_seconds("ORDER_EXPIRY_INTERVAL_S", …)` read SIYU_NATS_URL, …), or when it is
formatted per service (`f"SIYU_{name.upper()}_ADDR"`: one variable per service). Stream
names (SIYU_ORDER, SIYU_DLQ) share the prefix but are not settings.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

from siyu_kit.config import SERVICE_NAMES
from siyu_kit.events import streams

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("siyu_kit", "services", "gateway", "scripts", "bench", "deploy")
VARIABLE = re.compile(r"\bSIYU_[A-Z0-9_]+")
PER_SERVICE = re.compile(r"\bSIYU_\{\}(_[A-Z0-9_]+)")
STREAMS = {streams.DLQ_STREAM, *(streams.stream_name(s) for s in SERVICE_NAMES)}


def kit_readers() -> set[str]:
    """Functions of siyu_kit/config.py that read SIYU_<name> for the `name` they are given."""
    tree = ast.parse((ROOT / "siyu_kit" / "config.py").read_text())
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef) and node.args.args and node.args.args[0].arg == "name"}


def template(node: ast.JoinedStr) -> str:
    """An f-string with each replacement field as `{}`."""
    return "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)


def names_in(text: str) -> set[str]:
    found = {name.rstrip("_") for name in VARIABLE.findall(text)}
    for suffix in PER_SERVICE.findall(text):
        found |= {f"SIYU_{service.upper()}{suffix}" for service in SERVICE_NAMES}
    return found


def names_in_python(source: str, readers: set[str]) -> set[str]:
    found = names_in(source)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            found |= names_in(template(node))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first = node.args[0]
            if called in readers and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found |= names_in("SIYU_" + first.value)
            elif called in readers and isinstance(first, ast.JoinedStr):
                found |= names_in("SIYU_" + template(first))
    return found


def variables_read() -> set[str]:
    readers = kit_readers()
    found: set[str] = set()
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            text = path.read_text(errors="replace")
            found |= names_in_python(text, readers) if path.suffix == ".py" else names_in(text)
    return found - STREAMS


def readme_table() -> dict[str, tuple[str, str]]:
    """Each variable in the README's Configuration table, with its row's default and meaning."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3:
            continue
        for name in VARIABLE.findall(cells[0]):
            rows[name] = (cells[1], cells[2])
    return rows


def test_the_scan_finds_variables_of_every_kind():
    found = variables_read()
    # a literal name, a kit reader's argument, a per-service name, a deployment file's
    assert {"SIYU_FAILPOINTS", "SIYU_ORDER_EXPIRY_INTERVAL_S", "SIYU_CONTENT_ADDR", "SIYU_GRPC_PORT"} <= found
    assert not found & STREAMS


def test_every_variable_read_is_in_the_readme_with_default_and_meaning():
    table = readme_table()
    missing = sorted(variables_read() - set(table))
    assert missing == [], f"README.md's Configuration table lacks {', '.join(missing)}"
    incomplete = sorted(name for name, (default, meaning) in table.items() if not default or not meaning)
    assert incomplete == [], f"README.md's Configuration table gives no default or meaning for {incomplete}"
