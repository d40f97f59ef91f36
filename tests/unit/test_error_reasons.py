"""Every error reason the source raises is declared once in the protos' ErrorReason enums.

The scan reads the source (never runs it) and collects each word that reaches an error:
`reason=` / `refused_reason=` of any call except log lines and event messages, a default `reason=`, the third
argument of ApiError, the first of the helpers that take the reason first, the `"reason"`
of a literal error body (a dict with "code" and "reason"). A word is a string literal, a module constant (followed through
imports), either branch of `a if c else b`, or an f-string, which must match at least one
declared word. A word raised under services/<name>/ must be declared by that service's enum,
one it relays, or the common enum; one raised by siyu_kit/ or gateway/ by the common enum.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from siyu_kit import reasons

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("services", "siyu_kit", "gateway")
WORD = re.compile(r"^[A-Z][A-Z0-9_]*$")
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical"}
# Calls whose first or third positional argument is a reason.
REASON_FIRST = {"CartRuleBroken", "_refuse"}
REASON_THIRD = {"ApiError", "PayloadTooLarge"}
# Synonyms merged into one declared word: raising one of them fails, and none is declared.
MERGED = {"VERSION_MISMATCH": "VERSION_CONFLICT", "CART_VERSION_MISMATCH": "VERSION_CONFLICT",
                 "INSUFFICIENT_STOCK": "OUT_OF_STOCK", "INSUFFICIENT_AVAILABLE": "OUT_OF_STOCK",
                 "ILLEGAL_STATUS_TRANSITION": "STATUS_TRANSITION"}


@dataclass(frozen=True)
class Raised:
    word: str  # a word, or a regex for an f-string
    where: str  # path:line
    package: str  # the package whose reasons it may use
    pattern: bool = False


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


class _Module:
    def __init__(self, path: Path):
        self.path = path
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        self.constants: dict[str, str] = {}
        self.imports: dict[str, tuple[str, str]] = {}  # local name -> (module, name or "")
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, str):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.constants[target.id] = node.value.value
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (node.module, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    self.imports[alias.asname or alias.name.split(".")[0]] = (alias.name, "")


class _Scan:
    def __init__(self):
        self.modules = {_module_name(p): _Module(p) for top in SCANNED for p in sorted((ROOT / top).rglob("*.py"))}

    def constant(self, module: _Module, name: str, depth: int = 0) -> str | None:
        if name in module.constants:
            return module.constants[name]
        if name in module.imports and depth < 5:
            source, imported = module.imports[name]
            if imported and source in self.modules:
                return self.constant(self.modules[source], imported, depth + 1)
        return None

    def words(self, module: _Module, node: ast.AST) -> list[tuple[str, bool]]:
        """(word, is_pattern) for each value `node` can take that is known in the source."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [(node.value, False)] if node.value else []
        if isinstance(node, ast.IfExp):
            return self.words(module, node.body) + self.words(module, node.orelse)
        if isinstance(node, ast.BoolOp):
            return [w for value in node.values for w in self.words(module, value)]
        if isinstance(node, ast.Name):
            value = self.constant(module, node.id)
            return [(value, False)] if value else []
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            # rules.SOLD_OUT: a constant of an imported module.
            source = module.imports.get(node.value.id)
            if source is not None:
                name = f"{source[0]}.{source[1]}" if source[1] else source[0]
                if name in self.modules:
                    value = self.constant(self.modules[name], node.attr)
                    return [(value, False)] if value else []
            return []
        if isinstance(node, ast.JoinedStr):
            parts = [re.escape(v.value) if isinstance(v, ast.Constant) else "[A-Z0-9_]+" for v in node.values]
            return [("^" + "".join(parts) + "$", True)]
        return []

    def raised(self) -> list[Raised]:
        found = []
        for name, module in self.modules.items():
            parts = name.split(".")
            package = f"siyu.{parts[1]}.v1" if parts[0] == "services" else reasons.COMMON
            for node in ast.walk(module.tree):
                for value in self._reason_nodes(node):
                    for word, pattern in self.words(module, value):
                        found.append(Raised(word, f"{module.path.relative_to(ROOT)}:{value.lineno}", package,
                                            pattern))
        return found

    @staticmethod
    def _reason_nodes(node: ast.AST) -> list[ast.AST]:
        if isinstance(node, ast.Dict):
            # An error body written out: it has a code and a reason (a stored refund's
            # reason, without a code, is data).
            keys = {k.value: v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)}
            return [keys["reason"]] if {"reason", "code"} <= set(keys) else []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # A default reason, e.g. retry.on_conflict(reason="CONCURRENT_UPDATE").
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            return [d for a, d in pairs if a.arg in ("reason", "refused_reason")]
        if not isinstance(node, ast.Call):
            return []
        func = node.func
        callee = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if isinstance(func, ast.Attribute) and callee in LOG_METHODS:
            return []  # a log line's reason= field is not an answer
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id.endswith("_pb2"):
            return []  # an event message's reason field (why an order was cancelled) is data
        out = [k.value for k in node.keywords if k.arg in ("reason", "refused_reason")]
        if callee in REASON_FIRST and node.args:
            out.append(node.args[0])
        if callee in REASON_THIRD and len(node.args) >= 3:
            out.append(node.args[2])
        return out


@pytest.fixture(scope="module")
def raised() -> list[Raised]:
    return _Scan().raised()


def _allowed(package: str) -> set[str]:
    return set(reasons.of_package(package))


def test_the_scan_finds_the_reasons_of_every_layer(raised):
    words = {r.word for r in raised}
    # A literal, a kit literal, a gateway positional, a constant through an import, both
    # branches of a conditional, a literal error body and an f-string.
    assert {"OUT_OF_STOCK", "INVALID_FIELDS", "MALFORMED_JSON", "RATE_LIMITED", "ORDER_NOT_PAYABLE",
            "DEADLINE_TOO_SHORT", "SOLD_OUT", "NOTHING_TO_SHIP", "REFUND_OPEN", "METHOD_NOT_ALLOWED",
            "CONCURRENT_UPDATE", "CART_FULL"} <= words
    assert any(r.pattern and r.word.startswith("^RESERVATION_") for r in raised)
    # Event and log reasons are data, not refusals.
    assert not {"TIMEOUT", "MEMBER", "STOCK_UNAVAILABLE"} & words


def test_every_raised_reason_is_declared_where_its_callers_can_read_it(raised):
    missing = []
    for r in raised:
        allowed = _allowed(r.package)
        if r.pattern:
            if not any(re.match(r.word, word) for word in allowed):
                missing.append(f"{r.where}: {r.word} matches no reason of {r.package}")
        elif r.word not in allowed:
            hint = f" (merged into {MERGED[r.word]})" if r.word in MERGED else ""
            missing.append(f"{r.where}: {r.word} is not declared for {r.package}{hint}")
    assert not missing, "declare these in protos/siyu/*/v1/errors.proto:\n" + "\n".join(missing)


def test_each_word_is_declared_once_and_merged_synonyms_are_not():
    declared = reasons.declared()  # raises on a word declared twice
    assert not set(MERGED) & set(declared)
    assert {"VERSION_CONFLICT", "OUT_OF_STOCK", "STATUS_TRANSITION", "CONCURRENT_UPDATE"} <= set(declared)


def test_every_declared_reason_has_a_comment():
    from gateway import openapi

    comments = openapi.comments()
    undocumented = [f"{r.package}.ErrorReason.{word}" for word, r in reasons.declared().items()
                    if not comments.get(f"{r.package}.ErrorReason.{word}")]
    assert not undocumented


def test_a_reasonless_refusal_carries_a_declared_status_name():
    """The fallback a refusal without a reason of its own gets (siyu_kit.grpc_server)."""
    from siyu_kit.errors import DomainError

    codes = {cls.code.name for cls in DomainError.__subclasses__()} | {DomainError.code.name}
    assert codes <= set(reasons.declared())
    assert all(reasons.declared()[c].package == reasons.COMMON for c in codes)
    assert grpc.StatusCode.NOT_FOUND.name in reasons.of_package("siyu.content.v1")


def test_relayed_reasons_reach_the_relaying_service():
    order = reasons.of_package("siyu.order.v1")
    assert {"ORDER_NOT_PAYABLE", "SOLD_OUT", "OUT_OF_STOCK", "INVALID_FIELDS"} <= set(order)
    assert "ORDER_NOT_PAYABLE" not in reasons.of_package("siyu.catalog.v1")
    assert len(order) == len(set(order))


def test_an_undeclared_reason_is_logged_once_and_still_sent(capsys):
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        assert reasons.check("NO_SUCH_REASON_EVER") == "NO_SUCH_REASON_EVER"
        assert reasons.check("NO_SUCH_REASON_EVER") == "NO_SUCH_REASON_EVER"
        assert reasons.check("OUT_OF_STOCK") == "OUT_OF_STOCK"
    assert [(e["event"], e["log_level"], e["reason"]) for e in logs] == [
        ("reason.undeclared", "error", "NO_SUCH_REASON_EVER")]
