"""OpenAPI 3.1 from the same descriptors the routes come from, so docs and API cannot drift.

JSON follows the standard proto3 mapping with proto field names: int64/uint64 are strings,
enums are their names, Timestamps RFC 3339 strings, bytes base64. Each field's
`(siyu.common.v1.field)` rules (siyu_kit.field_rules, which the services enforce) become
`required`, `pattern`, lengths and integer bounds, so the document says what the server takes.

Descriptions of operations, schemas, fields and error reasons are the proto comments, read
from the descriptor set `make proto` writes with source info (gen/descriptors.binpb). The
error body's `reason` lists the words of the ErrorReason enums (siyu_kit.reasons); each
operation names the ones its service may give in `x-siyu-reasons`.
"""
from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor as F

from siyu_kit import field_rules, logging as slog, reasons
from siyu_kit.field_rules import Rules

from gateway import http_body
from gateway.routes import SCALAR_WKT, Route, Table, _is_map, _is_repeated

INT32 = {F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32}
UINT32 = {F.TYPE_UINT32, F.TYPE_FIXED32}
INT64 = {F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64, F.TYPE_UINT64, F.TYPE_FIXED64}
INT_RANGE = {**{t: (-2**31, 2**31 - 1) for t in INT32}, **{t: (0, 2**32 - 1) for t in UINT32},
             **{t: (-2**63, 2**63 - 1) for t in INT64}, F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1)}


log = slog.get("siyu.gateway")

DESCRIPTOR_SET = "descriptors.binpb"
# Field numbers in descriptor.proto, the steps of a SourceCodeInfo path.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_ENUM_VALUE, _SERVICE_METHOD = 2, 2


def descriptor_set_path() -> Path:
    """gen/descriptors.binpb, next to the generated package."""
    from siyu.common.v1 import common_pb2

    return Path(common_pb2.__file__).resolve().parents[3] / DESCRIPTOR_SET


def _text(location) -> str:
    """A comment as prose: each paragraph on one line, paragraphs apart by a blank line."""
    raw = location.leading_comments or location.trailing_comments
    paragraphs = [" ".join(line.strip() for line in block.splitlines() if line.strip())
                  for block in raw.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


@cache
def comments() -> dict[str, str]:
    """Full name → comment of every siyu service, method, message, field, enum and enum
    value that has one (`siyu.order.v1.OrderService.PlaceOrder`, `siyu.order.v1.Order.state`,
    `siyu.order.v1.ErrorReason.CART_EMPTY`). Empty, with an error logged, when the descriptor
    set is missing (code generated without `make proto`)."""
    path = descriptor_set_path()
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file
    except OSError:
        log.error("openapi.no_comments", path=str(path), hint="run make proto")
        return {}
    out: dict[str, str] = {}
    for file in files:
        if not file.package.startswith("siyu."):
            continue
        where = {tuple(loc.path): loc for loc in file.source_code_info.location}

        def note(name: str, at: tuple) -> None:
            location = where.get(at)
            text = _text(location) if location is not None else ""
            if text:
                out[name] = text

        def enum(prefix: str, e, at: tuple) -> None:
            note(f"{prefix}.{e.name}", at)
            for k, value in enumerate(e.value):
                note(f"{prefix}.{e.name}.{value.name}", at + (_ENUM_VALUE, k))

        def message(prefix: str, m, at: tuple) -> None:
            name = f"{prefix}.{m.name}"
            note(name, at)
            for k, fd in enumerate(m.field):
                note(f"{name}.{fd.name}", at + (_MESSAGE_FIELD, k))
            for k, nested in enumerate(m.nested_type):
                message(name, nested, at + (_MESSAGE_NESTED, k))
            for k, e in enumerate(m.enum_type):
                enum(name, e, at + (_MESSAGE_ENUM, k))

        for i, m in enumerate(file.message_type):
            message(file.package, m, (_FILE_MESSAGE, i))
        for i, e in enumerate(file.enum_type):
            enum(file.package, e, (_FILE_ENUM, i))
        for i, service in enumerate(file.service):
            name = f"{file.package}.{service.name}"
            note(name, (_FILE_SERVICE, i))
            for k, method in enumerate(service.method):
                note(f"{name}.{method.name}", (_FILE_SERVICE, i, _SERVICE_METHOD, k))
    return out


def _described(schema: dict, text: str) -> dict:
    """The schema with `text` in front of what its description says already."""
    if not text:
        return schema
    known = schema.get("description")
    return {**schema, "description": f"{text} ({known})" if known else text}


def _digits(low: str, high: str) -> list[str]:
    """Regex alternatives for the decimal numbers low..high, both of the same length."""
    if low == high:
        return [low]
    rest = len(low) - 1
    if set(low[1:]) <= {"0"} and set(high[1:]) <= {"9"}:
        head = f"[{low[0]}-{high[0]}]" if low[0] != high[0] else low[0]
        return [head + (f"[0-9]{{{rest}}}" if rest else "")]
    if low[0] == high[0]:
        return [low[0] + a for a in _digits(low[1:], high[1:])]
    out = [low[0] + a for a in _digits(low[1:], "9" * rest)]
    if int(high[0]) - int(low[0]) > 1:
        out.append(f"[{int(low[0]) + 1}-{int(high[0]) - 1}][0-9]{{{rest}}}")
    return out + [high[0] + a for a in _digits("0" * rest, high[1:])]


def _natural(low: int, high: int) -> list[str]:
    """Alternatives for low..high, 0 <= low <= high, without leading zeros."""
    out = []
    for length in range(len(str(low)), len(str(high)) + 1):
        start = low if length == len(str(low)) else 10 ** (length - 1)
        end = high if length == len(str(high)) else 10 ** length - 1
        out += _digits(str(start), str(end))
    return out


def integer_pattern(low: int, high: int) -> str:
    """An anchored regex of exactly the decimal integers low..high, as proto3 JSON writes them
    (no sign for positives, no leading zeros): int64 travels as such a string."""
    alternatives = []
    if low < 0:
        alternatives += ["-(?:" + "|".join(_natural(max(1, -high if high < 0 else 1), -low)) + ")"]
    if high >= 0:
        alternatives += _natural(max(low, 0), high)
    return "^(?:" + "|".join(alternatives) + ")$"

WKT_SCHEMAS = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte"},
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.DoubleValue": {"type": "number"},
    "google.protobuf.FloatValue": {"type": "number"},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32"},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64", "minimum": 0},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64"},
    "google.protobuf.UInt64Value": {"type": "string", "format": "uint64"},
}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "status", "message", "request_id"],
        "properties": {
            "code": {"type": "string", "description": "gRPC status code name, e.g. NOT_FOUND"},
            "status": {"type": "integer", "description": "the HTTP status"},
            "message": {"type": "string"},
            # Filled in by error_schema(): the declared words with their descriptions.
            "reason": {"type": "string", "description": "stable machine-readable reason, e.g. OUT_OF_STOCK"},
            "request_id": {"type": "string"},
            "field_violations": {"type": "array", "items": {
                "type": "object", "required": ["field", "description"],
                "properties": {"field": {"type": "string"}, "description": {"type": "string"}}}},
        },
    }},
}
# The statuses of google.rpc.Code's HTTP mapping (gateway.errors.HTTP_BY_CODE) an operation
# may answer with; the error's `reason` (x-siyu-reasons) says which refusal it is.
ERROR_STATUSES = {"400": "Bad input (INVALID_ARGUMENT, with field violations), or the state does not allow the "
                         "call (FAILED_PRECONDITION, OUT_OF_RANGE): branch on `reason`",
                  "401": "Missing or invalid API key or token", "403": "Role not allowed",
                  "404": "Not found", "409": "Conflict: a concurrent change (ABORTED) or a duplicate (ALREADY_EXISTS)",
                  "429": "Rate limit or no stock (RESOURCE_EXHAUSTED)",
                  "503": "Service unavailable; retry after Retry-After",
                  "504": "The service did not answer in time"}
SECURITY = {"PUBLIC": [], "CHANNEL": [{"apiKey": []}], "MEMBER": [{"apiKey": [], "bearer": []}],
            "STAFF": [{"bearer": []}], "PLATFORM": [{"bearer": []}]}


def required_field(fd) -> bool:
    """Whether a request must carry the field: declared required, or an integer whose bounds
    exclude 0 (its unset value)."""
    rules = field_rules.rules_of(fd)
    if rules is None:
        return False
    if rules.required:
        return True
    return fd.type in INT_RANGE and not _is_repeated(fd) and not fd.has_presence and (
        (rules.min is not None and rules.min > 0) or (rules.max is not None and rules.max < 0))


def error_schema(notes: dict[str, str]) -> dict:
    """The error body, its `reason` an enum of every declared word, each described."""
    declared = reasons.declared()
    words = sorted(declared)
    texts = [notes.get(f"{declared[w].package}.{reasons.ENUM_NAME}.{w}", "") for w in words]
    listing = "\n".join(f"- `{w}`: {t}" if t else f"- `{w}`" for w, t in zip(words, texts))
    reason = {"type": "string", "enum": words, "x-enum-descriptions": texts, "description": (
        "Stable machine-readable reason, e.g. OUT_OF_STOCK; each operation's `x-siyu-reasons` lists those "
        "it may give. A refusal without a more specific reason carries its code's name.\n\n" + listing)}
    inner = ERROR_SCHEMA["properties"]["error"]
    return {**ERROR_SCHEMA, "properties": {"error": {**inner, "properties": {**inner["properties"], "reason": reason}}}}


class _Schemas:
    def __init__(self, notes: dict[str, str] | None = None):
        self.components: dict[str, dict] = {}
        # Proto comments by full name (comments()).
        self.notes = notes or {}

    def ref(self, name: str) -> dict:
        return {"$ref": f"#/components/schemas/{name}"}

    def enum(self, enum_descriptor) -> dict:
        name = enum_descriptor.full_name
        if name not in self.components:
            self.components[name] = {"type": "string", "enum": [v.name for v in enum_descriptor.values]}
            text = self._enum_text(enum_descriptor)
            if text:
                self.components[name]["description"] = text
        return self.ref(name)

    def _enum_text(self, enum_descriptor, values=None) -> str:
        """The enum's comment, then one line per value that has a comment."""
        name = enum_descriptor.full_name
        lines = [f"- `{v.name}`: {self.notes[f'{name}.{v.name}']}" for v in (values or enum_descriptor.values)
                 if f"{name}.{v.name}" in self.notes]
        return "\n\n".join(t for t in (self.notes.get(name, ""), "\n".join(lines)) if t)

    def message(self, descriptor) -> dict:
        name = descriptor.full_name
        if name in WKT_SCHEMAS:
            return dict(WKT_SCHEMAS[name])
        if name not in self.components:
            self.components[name] = {}  # reserve the name first: messages may refer to themselves
            props = {f.name: self.property(f) for f in descriptor.fields}
            self.components[name] = {"type": "object", "properties": props, "additionalProperties": False}
            if name in self.notes:
                self.components[name]["description"] = self.notes[name]
            required = [f.name for f in descriptor.fields if required_field(f)]
            if required:
                self.components[name]["required"] = required
        return self.ref(name)

    def single(self, fd) -> dict:
        if fd.type == F.TYPE_MESSAGE:
            return self.message(fd.message_type)
        if fd.type == F.TYPE_ENUM:
            return self.enum(fd.enum_type)
        if fd.type in INT32:
            return {"type": "integer", "format": "int32"}
        if fd.type in UINT32:
            return {"type": "integer", "format": "int64", "minimum": 0}
        if fd.type in INT64:
            return {"type": "string", "format": "uint64" if fd.type in (F.TYPE_UINT64, F.TYPE_FIXED64) else "int64"}
        if fd.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
            return {"type": "number"}
        if fd.type == F.TYPE_BOOL:
            return {"type": "boolean"}
        if fd.type == F.TYPE_BYTES:
            return {"type": "string", "format": "byte"}
        return {"type": "string"}

    def constrained(self, fd, rules: Rules | None, element: bool = False) -> dict:
        """One value of the field (an element, for repeated fields) with its declared rules."""
        schema = self.single(fd)
        if fd.type in INT_RANGE:
            low, high = INT_RANGE[fd.type]
            if rules is not None:
                low = max(low, rules.min) if rules.min is not None else low
                high = min(high, rules.max) if rules.max is not None else high
            # proto3 JSON takes a number or a decimal string for every integer type.
            schema = {"type": ["integer", "string"], "format": schema["format"], "minimum": low, "maximum": high,
                      "pattern": integer_pattern(low, high)}
            if rules is not None and rules.required and low <= 0 <= high:
                # 0 is the unset value, which a required field refuses.
                schema["not"] = {"enum": [0, "0"]}
        elif fd.type == F.TYPE_ENUM and rules is not None and rules.required:
            values = [v.name for v in fd.enum_type.values if v.number]
            schema = {"type": "string", "enum": values}
            text = self._enum_text(fd.enum_type, [v for v in fd.enum_type.values if v.number])
            if text:
                schema["description"] = text
        elif fd.type == F.TYPE_STRING and rules is not None:
            required = rules.required or element
            pattern = rules.pattern_source or None
            if pattern and not required:
                # An empty string is the field left unset.
                pattern = f"^$|{pattern}"
            if pattern:
                schema["pattern"] = pattern
            if required:
                schema["minLength"] = max(rules.min_len, 1)
            if rules.max_len:
                schema["maxLength"] = rules.max_len
            if rules.description:
                schema["description"] = rules.description
        return schema

    def note(self, fd) -> str:
        """The field's proto comment."""
        return self.notes.get(fd.full_name, "")

    def property(self, fd) -> dict:
        """The field as a property of its message's schema, described by its comment."""
        return _described(self.field(fd), self.note(fd))

    def field(self, fd) -> dict:
        rules = field_rules.rules_of(fd)
        if _is_map(fd):
            value_fd = fd.message_type.fields_by_name["value"]
            schema = {"type": "object", "additionalProperties": self.single(value_fd)}
            if rules is not None and rules.key_pattern is not None:
                schema["propertyNames"] = {"pattern": rules.key_pattern_source}
            if rules is not None and rules.value_max_len and value_fd.type == F.TYPE_STRING:
                schema["additionalProperties"] = {"type": "string", "maxLength": rules.value_max_len}
        elif _is_repeated(fd):
            schema = {"type": "array", "items": self.constrained(fd, rules, element=True)}
            if rules is not None and rules.required:
                schema["minItems"] = 1
        else:
            return self.constrained(fd, rules)
        if rules is not None and rules.max_items:
            schema["maxProperties" if _is_map(fd) else "maxItems"] = rules.max_items
        return schema


def _query_fields(descriptor, prefix: str = "", skip: frozenset = frozenset(), seen: tuple = ()):
    """Leaf fields a query string can set, with dotted names."""
    for fd in descriptor.fields:
        name = prefix + fd.name
        if name in skip or _is_map(fd):
            continue
        if fd.type == F.TYPE_MESSAGE and fd.message_type.full_name not in SCALAR_WKT:
            if _is_repeated(fd) or fd.message_type.full_name in seen or len(seen) > 4:
                continue
            yield from _query_fields(fd.message_type, name + ".", skip, seen + (descriptor.full_name,))
        else:
            yield name, fd


def _described_param(param: dict, text: str) -> dict:
    return {**param, "description": text} if text else param


def _variable_note(request, variable: str, schemas: _Schemas) -> str:
    descriptor, fd = request, None
    for part in variable.split("."):
        fd = descriptor.fields_by_name[part]
        descriptor = fd.message_type
    return schemas.note(fd)


def _path_schema(request, variable: str, schemas: _Schemas) -> dict:
    descriptor, fd = request, None
    for part in variable.split("."):
        fd = descriptor.fields_by_name[part]
        descriptor = fd.message_type
    schema = schemas.field(fd)
    # A path segment is never empty.
    if schema.get("type") == "string":
        schema = {**schema, "minLength": max(schema.get("minLength", 0), 1)}
        if schema.get("pattern", "").startswith("^$|"):
            schema["pattern"] = schema["pattern"][3:]
    return schema


def _operation(route: Route, schemas: _Schemas) -> dict:
    request = route.method_descriptor.input_type
    path_vars = set(route.template.variables)
    params = [_described_param({"name": v, "in": "path", "required": True,
                                "schema": _path_schema(request, v, schemas)}, _variable_note(request, v, schemas))
              for v in route.template.variables]
    op: dict = {
        "operationId": f"{route.service.rsplit('.', 1)[-1]}_{route.method_name}",
        "summary": f"{route.service}.{route.method_name}",
        "tags": [route.service.rsplit(".", 1)[-1]],
        "x-siyu-access": route.rule.access,
        "security": SECURITY.get(route.rule.access, []),
    }
    text = schemas.notes.get(f"{route.service}.{route.method_name}", "")
    if route.rule.roles:
        op["x-siyu-roles"] = list(route.rule.roles)
        roles = "Staff roles: " + ", ".join(route.rule.roles) + " (OWNER always allowed)."
        text = f"{text}\n\n{roles}" if text else roles
    if text:
        op["description"] = text
    # The error reasons a call may carry: its service's, those it relays, the common ones.
    op["x-siyu-reasons"] = list(reasons.of_package(route.service.rsplit(".", 1)[0]))
    if route.body != "*":
        skip = frozenset(path_vars | ({route.body} if route.body else set()))
        for name, fd in _query_fields(request, skip=skip):
            schema = schemas.field(fd)
            param = _described_param({"name": name, "in": "query", "required": "." not in name and required_field(fd),
                                      "schema": schema}, schemas.note(fd))
            if _is_repeated(fd):
                param["explode"] = True
            params.append(param)
    if params:
        op["parameters"] = params
    if route.body == "*":
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schemas.message(request)}}}
    elif route.body:
        body_fd = request.fields_by_name[route.body]
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": schemas.field(body_fd)}}}
        if schemas.note(body_fd):
            op["requestBody"]["description"] = schemas.note(body_fd)
    output = route.method_descriptor.output_type
    if http_body.is_http_body(output):
        # A file: its bytes, as the media type it is sent with.
        responses = {"200": {"description": "OK", "content": {
            http_body.documented_media_type(text): {"schema": {"type": "string", "format": "binary"}}}}}
    else:
        responses = {"200": {"description": "OK", "content": {
            "application/json": {"schema": schemas.message(output)}}}}
    for status, text in ERROR_STATUSES.items():
        responses[status] = {"$ref": f"#/components/responses/Error{status}"}
    responses["default"] = {"$ref": "#/components/responses/ErrorDefault"}
    op["responses"] = responses
    return op


def document(table: Table, title: str = "Siyu API", version: str = "v1") -> dict:
    notes = comments()
    schemas = _Schemas(notes)
    paths: dict[str, dict] = {}
    for route in sorted(table.routes, key=lambda r: (r.template.openapi_path, r.http_method)):
        paths.setdefault(route.template.openapi_path, {})[route.http_method.lower()] = _operation(route, schemas)
    error_response = {"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses = {f"Error{s}": {**error_response, "description": t} for s, t in ERROR_STATUSES.items()}
    responses["ErrorDefault"] = {**error_response, "description": "Unexpected error"}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": (
            "HTTP/JSON API of Siyu, transcoded from the services' gRPC contracts. JSON uses the proto3 "
            "mapping with proto field names: 64-bit integers are strings, enums their names, timestamps "
            "RFC 3339. Money is integer minor units. Channel routes need X-Api-Key; member routes also a "
            "member bearer token; staff routes a staff bearer token.")},
        "tags": [{"name": service.rsplit(".", 1)[-1], **({"description": notes[service]} if service in notes else {})}
                 for service in sorted({r.service for r in table.routes}, key=lambda s: s.rsplit(".", 1)[-1])],
        "paths": paths,
        "components": {
            "schemas": {**dict(sorted(schemas.components.items())), "Error": error_schema(notes)},
            "responses": responses,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                           "description": "channel API key: selects merchant and channel"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "member or staff access token"},
            },
        },
    }


def _page_text(text: str) -> str:
    return "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p)


def docs_page(doc: dict) -> str:
    """A self-contained page listing every operation; no scripts, no CDN."""
    rows = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            params = ", ".join(f"{p['name']} ({p['in']})" for p in op.get("parameters", []))
            body = "JSON body" if "requestBody" in op else ""
            roles = ", ".join(op.get("x-siyu-roles", []))
            rows.append(
                f"<tr><td class=m>{method.upper()}</td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op['summary'])}{_page_text(op.get('description', ''))}</td><td>{op['x-siyu-access']}"
                f"{' · ' + html.escape(roles) if roles else ''}</td>"
                f"<td>{html.escape(params)}{' · ' if params and body else ''}{body}</td></tr>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(doc['info']['title'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:.35rem .6rem;text-align:left;vertical-align:top}}
.m{{font-weight:bold}}code{{font-size:.95em}}</style></head>
<body><h1>{html.escape(doc['info']['title'])}</h1>
<p>{html.escape(doc['info']['description'])}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI {doc['openapi']}).
Errors: <code>{{"error": {{"code", "status", "message", "reason", "request_id", "field_violations"}}}}</code>.</p>
<table><thead><tr><th>Method</th><th>Path</th><th>RPC</th><th>Access</th><th>Input</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
