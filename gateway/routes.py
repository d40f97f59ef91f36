"""The transcoding table, read from the protos' `google.api.http` annotations.

Adding an annotated RPC to a service's proto exposes it here with no gateway code; an RPC
whose access rule is INTERNAL, or that has no annotation, is never exposed.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from google.api import annotations_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor

from siyu_kit import access
from siyu_kit.config import SERVICE_NAMES

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Template:
    """A parsed path template such as `/v1/{name=shelves/*}/books/{book_id}:publish`."""
    text: str
    regex: re.Pattern
    variables: tuple[str, ...]  # field paths, in order of the capture groups
    verb: str
    literals: int  # literal segments: more literal templates win over less literal ones

    def match(self, raw_path: str) -> dict[str, str] | None:
        found = self.regex.fullmatch(raw_path)
        if found is None:
            return None
        return {name: unquote(found.group(f"v{i}")) for i, name in enumerate(self.variables)}

    @property
    def openapi_path(self) -> str:
        """`{name=shelves/*}` becomes `{name}`; the verb stays part of the path."""
        return re.sub(r"\{([^}=]+)(=[^}]*)?\}", r"{\1}", self.text)


def _split_top(text: str, sep: str) -> list[str]:
    """Splits on `sep` outside {variables}."""
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


_LITERAL = re.compile(r"[A-Za-z0-9._~%!$&'()+,;@=-]+")
_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _segment_regex(seg: str) -> tuple[str, int]:
    if seg == "*":
        return "[^/]+", 0
    if seg == "**":
        return ".+", 0
    if not _LITERAL.fullmatch(seg):
        raise TemplateError(f"bad path segment {seg!r}")
    return re.escape(seg), 1


def parse_template(text: str) -> Template:
    if not text.startswith("/"):
        raise TemplateError(f"template must start with '/': {text!r}")
    pieces = _split_top(text[1:], ":")
    if len(pieces) > 2:
        raise TemplateError(f"more than one verb in {text!r}")
    body, verb = pieces[0], (pieces[1] if len(pieces) == 2 else "")
    if len(pieces) == 2 and not re.fullmatch(r"[A-Za-z0-9_.-]+", verb):
        raise TemplateError(f"bad verb {verb!r}")
    regex, variables, literals = [], [], 0
    for seg in _split_top(body, "/"):
        if seg.startswith("{") and seg.endswith("}"):
            name, _, sub = seg[1:-1].partition("=")
            if not _FIELD_PATH.fullmatch(name):
                raise TemplateError(f"bad variable {seg!r}")
            sub_parts = []
            for s in (sub.split("/") if sub else ["*"]):
                piece, count = _segment_regex(s)
                sub_parts.append(piece)
                literals += count
            regex.append(f"(?P<v{len(variables)}>{'/'.join(sub_parts)})")
            variables.append(name)
        else:
            piece, count = _segment_regex(seg)
            regex.append(piece)
            literals += count
    pattern = "/" + "/".join(regex) + (re.escape(":" + verb) if verb else "")
    return Template(text, re.compile(pattern), tuple(variables), verb, literals)


@dataclass(frozen=True)
class Route:
    backend: str  # catalog, member, order or content
    service: str  # siyu.order.v1.OrderService
    method_name: str  # PayOrder
    http_method: str  # GET, POST, ...
    template: Template
    body: str  # "", "*" or a field name
    rule: access.Rule
    request_class: Any
    response_class: Any
    method_descriptor: Any = field(compare=False, repr=False)

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.method_name}"

    @property
    def label(self) -> str:
        return f"{self.http_method} {self.template.text}"


def _http_rules(method_descriptor):
    options = method_descriptor.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return []
    rule = options.Extensions[annotations_pb2.http]
    rules = [rule, *rule.additional_bindings]
    found = []
    for r in rules:
        kind = r.WhichOneof("pattern")
        if kind in HTTP_METHODS:
            found.append((kind.upper(), getattr(r, kind), r.body))
        elif kind == "custom":
            found.append((r.custom.kind.upper(), r.custom.path, r.body))
    return found


def routes_of(backend: str, service_descriptor) -> list[Route]:
    routes = []
    for method in service_descriptor.methods:
        rule = access.rule_of(method)
        if rule.access == "INTERNAL":
            continue
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        for http_method, path, body in _http_rules(method):
            template = parse_template(path)
            for var in template.variables:
                _field_at(method.input_type, var)
            routes.append(Route(backend, service_descriptor.full_name, method.name, http_method, template, body,
                                rule, request_class, response_class, method))
    return routes


def discover(backends=SERVICE_NAMES) -> list:
    """Every service descriptor of the suite: (backend name, ServiceDescriptor)."""
    found = []
    for name in backends:
        module = importlib.import_module(f"siyu.{name}.v1.{name}_pb2")
        for service in module.DESCRIPTOR.services_by_name.values():
            found.append((name, service))
    return found


class Table:
    """Finds the route of a request: literal-richer and verb templates win."""

    def __init__(self, routes: list[Route]):
        self.routes = sorted(routes, key=lambda r: (not r.template.verb, -r.template.literals))
        # A request is tried only against the routes that could match it: those whose first
        # two segments are its own, and those that start with a variable (in table order).
        # Hundreds of regular expressions per request were a tenth of the gateway's CPU.
        open_routes = [r for r in self.routes if _head(r.template.text) is None]
        heads = {_head(r.template.text) for r in self.routes} - {None}
        self._by_head = {head: [r for r in self.routes if _head(r.template.text) in (head, None)] for head in heads}
        self._open = open_routes

    def _candidates(self, raw_path: str) -> list[Route]:
        parts = raw_path.split("/", 3)
        if len(parts) < 3:
            return self._open
        return self._by_head.get((parts[1], parts[2].split(":", 1)[0]), self._open)

    @classmethod
    def from_protos(cls, backends=SERVICE_NAMES) -> "Table":
        routes = []
        for backend, service in discover(backends):
            routes.extend(routes_of(backend, service))
        return cls(routes)

    def match(self, http_method: str, raw_path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path variables, path known for another method)."""
        path_known = verb_matched = False
        for route in self._candidates(raw_path):
            if verb_matched and not route.template.verb:
                # `/orders/o1:cancel` names the cancel route, not GetOrder of "o1:cancel".
                break
            values = route.template.match(raw_path)
            if values is None:
                continue
            if route.http_method == http_method:
                return route, values, True
            path_known = True
            verb_matched = verb_matched or bool(route.template.verb)
        return None, {}, path_known

    def allowed_methods(self, raw_path: str) -> list[str]:
        """The methods `match` would serve at this path: a verb path offers only its verb
        routes, never the verb-less route whose variable happens to swallow `id:verb`."""
        matching = [r for r in self._candidates(raw_path) if r.template.match(raw_path) is not None]
        if any(r.template.verb for r in matching):
            matching = [r for r in matching if r.template.verb]
        return sorted({r.http_method for r in matching})


def _head(template_text: str) -> tuple[str, str] | None:
    """The first two segments of a template when both are literal (`("v1", "orders")` for
    `/v1/orders/{order_id}:cancel`), else None."""
    parts = template_text.split("/", 3)
    if len(parts) < 3:
        return None
    first, second = parts[1], parts[2].split(":", 1)[0]
    if not (_LITERAL.fullmatch(first) and _LITERAL.fullmatch(second)):
        return None
    return first, second


# ---- request fields from path, query and body ------------------------------------------

class FieldError(ValueError):
    def __init__(self, field_path: str, description: str):
        super().__init__(f"{field_path}: {description}")
        self.field = field_path
        self.description = description


def _field_at(message_descriptor, dotted: str) -> FieldDescriptor:
    """The field a dotted path names, through singular message fields."""
    desc, fd = message_descriptor, None
    for part in dotted.split("."):
        if desc is None:
            raise FieldError(dotted, "is not a message field")
        fd = desc.fields_by_name.get(part)
        if fd is None:
            raise FieldError(dotted, "no such field")
        desc = fd.message_type if fd.type == FieldDescriptor.TYPE_MESSAGE and not _is_repeated(fd) else None
    return fd


def _is_repeated(fd: FieldDescriptor) -> bool:
    return fd.is_repeated


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry


# Well-known types whose JSON form is a single string or number, so a query value fits.
SCALAR_WKT = {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask",
              "google.protobuf.StringValue", "google.protobuf.Int64Value", "google.protobuf.UInt64Value",
              "google.protobuf.Int32Value", "google.protobuf.UInt32Value", "google.protobuf.BoolValue",
              "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.BytesValue"}


def _query_value(fd: FieldDescriptor, raw: str, name: str):
    """One query string value in the form ParseDict expects for the field."""
    if fd.type == FieldDescriptor.TYPE_BOOL or (
            fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type.full_name == "google.protobuf.BoolValue"):
        # Only the two JSON literals, as in a body; "1", "yes" or "TRUE" are refused.
        if raw in ("true", "false"):
            return raw == "true"
        raise FieldError(name, "must be true or false")
    if fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type.full_name not in SCALAR_WKT:
        raise FieldError(name, "is a message; name one of its fields with a dot")
    return raw


def query_to_dict(message_descriptor, params: list[tuple[str, str]], skip: set[str] = frozenset()) -> dict:
    """Query parameters → a JSON-shaped dict: `a.b=1` nests, a repeated field takes every
    value of its parameter, enums stay names (ParseDict resolves them)."""
    out: dict = {}
    for name, raw in params:
        if name in skip:
            raise FieldError(name, "is bound by the path or the body")
        parts = name.split(".")
        desc, node = message_descriptor, out
        for i, part in enumerate(parts):
            fd = desc.fields_by_name.get(part) if desc is not None else None
            if fd is None:
                raise FieldError(name, "no such field")
            last = i == len(parts) - 1
            if _is_map(fd):
                raise FieldError(name, "map fields cannot be set from the query string")
            if not last:
                if fd.type != FieldDescriptor.TYPE_MESSAGE or _is_repeated(fd) or \
                        fd.message_type.full_name in SCALAR_WKT:
                    raise FieldError(name, f"{part} is not a message field")
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise FieldError(name, "set twice")
                desc = fd.message_type
                continue
            value = _query_value(fd, raw, name)
            if _is_repeated(fd):
                node.setdefault(part, []).append(value)
            elif part in node:
                raise FieldError(name, "given more than once")
            else:
                node[part] = value
    return out


def set_path(target: dict, dotted: str, value: str) -> None:
    """Sets a path variable into the request dict; the path wins over the body."""
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise FieldError(dotted, "must be an object")
        node = nxt
    node[parts[-1]] = value


_PREFIX = re.compile(r"^Failed to parse (\S+) field: ")
_UNKNOWN = re.compile(r'has no field named "([^"]+)" at "([^"]+)"')
_AT = re.compile(r" at ([A-Za-z_][\w.\[\]]*?)\.?$")


def parse_error_field(message: str) -> tuple[str, str]:
    """json_format's ParseError text → (field path, description)."""
    chain, rest = [], message.strip()
    while (m := _PREFIX.match(rest)):
        chain.append(m.group(1))
        rest = rest[m.end():]
    unknown = _UNKNOWN.search(rest)
    if unknown:
        where = unknown.group(2).split(".", 1)
        prefix = where[1] + "." if len(where) > 1 else ""
        return prefix + unknown.group(1), "unknown field"
    at = _AT.search(rest)
    description = rest[:at.start()] if at else rest
    description = description.rstrip(". ") or "invalid value"
    if at and "." in at.group(1):
        return at.group(1).split(".", 1)[1], description
    return ".".join(chain) or "body", description
