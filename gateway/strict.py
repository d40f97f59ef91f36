"""Strict reading of HTTP/JSON input before it becomes a request message.

json_format alone is too lenient for input from the internet: it converts integers with
Python's `int()` (which takes `"１"`, `"+1"`, `"1_000"`, `"\\t1"`), parses times with
`strptime` (any Unicode digits, any offset), treats `null` as unset and recurses without a
bound. Every value is therefore checked here against the request's descriptor first, with
messages a front end can show; json_format then only converts values already known good.
"""
from __future__ import annotations

import datetime
import json
import re
from itertools import accumulate
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from gateway.errors import ApiError
from siyu_kit.errors import FieldViolation

MAX_BODY_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_VIOLATIONS = 20

# A JSON string (escapes included); brackets inside one do not nest anything.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DELTA = [0] * 256
for _b in b"[{":
    _DELTA[_b] = 1
for _b in b"]}":
    _DELTA[_b] = -1

_INTEGER = re.compile(r"-?[0-9]+")  # ASCII digits only; no sign '+', spaces or '_'
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
                      r"(Z|[+-][0-9]{2}:[0-9]{2})")
TIME_EXAMPLE = "2026-05-01T10:00:00+08:00"

_INT_RANGES = {
    FieldDescriptor.CPPTYPE_INT32: (-(1 << 31), (1 << 31) - 1),
    FieldDescriptor.CPPTYPE_UINT32: (0, (1 << 32) - 1),
    FieldDescriptor.CPPTYPE_INT64: (-(1 << 63), (1 << 63) - 1),
    FieldDescriptor.CPPTYPE_UINT64: (0, (1 << 64) - 1),
}
_MIN_TIME = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)
_MAX_TIME = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)


class PayloadTooLarge(ApiError):
    """413: no gRPC code names a body refused for its size."""

    @property
    def http_status(self) -> int:
        return 413


def too_large() -> PayloadTooLarge:
    return PayloadTooLarge("PAYLOAD_TOO_LARGE", f"the body is larger than {MAX_BODY_BYTES} bytes",
                           "BODY_TOO_LARGE", [FieldViolation("body", f"at most {MAX_BODY_BYTES} bytes")])


def malformed(description: str) -> ApiError:
    return ApiError("INVALID_ARGUMENT", "the body is not valid JSON", "MALFORMED_JSON",
                    [FieldViolation("body", description)])


def nesting_depth(raw: bytes) -> int:
    """How deep arrays and objects nest, counted on the bytes without parsing them."""
    skeleton = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DELTA.__getitem__, skeleton)), default=0)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


def _no_constant(name: str):
    raise ValueError(name)


class _Duplicate(ValueError):
    pass


def load_body(raw: bytes) -> Any:
    """The body's JSON value; refuses deep nesting before parsing, NaN/Infinity and repeated
    keys (which a lenient parser would silently resolve to the last one)."""
    if nesting_depth(raw) > MAX_DEPTH:
        raise ApiError("INVALID_ARGUMENT", f"the body nests deeper than {MAX_DEPTH} levels", "BODY_TOO_DEEP",
                       [FieldViolation("body", f"at most {MAX_DEPTH} levels of arrays and objects")])
    try:
        # UTF-8 only (RFC 8259); json.loads would also guess UTF-16 and UTF-32 from bytes.
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Duplicate as error:
        raise malformed(f"the key {str(error)!r} appears twice in one object") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise malformed("not valid JSON") from None


# ---- values against the request's descriptor ----------------------------------------------

class _Violations:
    def __init__(self):
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        if len(self.items) < MAX_VIOLATIONS:
            self.items.append(FieldViolation(field or "body", description))


def check_message(descriptor, data: dict) -> tuple[dict, list[FieldViolation]]:
    """(the data with every value in canonical proto3 JSON form, violations)."""
    found = _Violations()
    return _message(descriptor, data, "", found), found.items


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _message(descriptor, data: dict, path: str, found: _Violations) -> dict:
    by_json = {f.json_name: f for f in descriptor.fields}
    out: dict = {}
    seen: dict[str, str] = {}
    oneofs: dict[str, str] = {}
    for key, value in data.items():
        fd = descriptor.fields_by_name.get(key) or by_json.get(key)
        where = _join(path, key)
        if fd is None:
            found.add(where, "unknown field")
            continue
        if fd.name in seen:
            found.add(where, f"given twice (as {seen[fd.name]} and {key})")
            continue
        seen[fd.name] = key
        oneof = fd.containing_oneof
        if oneof is not None and not oneof.name.startswith("_"):  # `optional` makes a synthetic oneof
            if oneof.name in oneofs:
                found.add(where, f"only one of {', '.join(f.name for f in oneof.fields)} may be set")
                continue
            oneofs[oneof.name] = fd.name
        out[fd.name] = _field(fd, value, _join(path, fd.name), found)
    return out


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.type == FieldDescriptor.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry


def _field(fd: FieldDescriptor, value: Any, path: str, found: _Violations) -> Any:
    if value is None:
        found.add(path, "must not be null; leave the field out instead")
        return None
    if _is_map(fd):
        if not isinstance(value, dict):
            found.add(path, "must be an object")
            return value
        key_fd = fd.message_type.fields_by_name["key"]
        value_fd = fd.message_type.fields_by_name["value"]
        out = {}
        for key, item in value.items():
            where = f"{path}[{key!r}]"
            checked_key = _map_key(key_fd, key, where, found)
            if item is None:
                found.add(where, "must not be null")
                continue
            out[checked_key] = _single(value_fd, item, where, found)
        return out
    if fd.is_repeated:
        if not isinstance(value, list):
            found.add(path, "must be an array")
            return value
        out = []
        for i, item in enumerate(value):
            if item is None:
                found.add(f"{path}[{i}]", "must not be null")
                continue
            out.append(_single(fd, item, f"{path}[{i}]", found))
        return out
    return _single(fd, value, path, found)


def _map_key(fd: FieldDescriptor, key: str, path: str, found: _Violations) -> str:
    if fd.cpp_type in _INT_RANGES:
        _integer(fd, key, path, found)
    elif fd.type == FieldDescriptor.TYPE_BOOL and key not in ("true", "false"):
        found.add(path, "the key must be true or false")
    return key


def _single(fd: FieldDescriptor, value: Any, path: str, found: _Violations) -> Any:
    kind = fd.type
    if kind == FieldDescriptor.TYPE_MESSAGE or kind == FieldDescriptor.TYPE_GROUP:
        name = fd.message_type.full_name
        if name == "google.protobuf.Timestamp":
            return timestamp(value, path, found)
        if name.startswith("google.protobuf."):
            return value  # other well-known types keep their own JSON forms
        if not isinstance(value, dict):
            found.add(path, "must be an object")
            return value
        return _message(fd.message_type, value, path, found)
    if kind == FieldDescriptor.TYPE_STRING:
        if not isinstance(value, str):
            found.add(path, "must be a string")
        elif not _is_utf8(value):
            found.add(path, "must be valid Unicode text")
        return value
    if kind == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            found.add(path, "must be true or false")
        return value
    if kind == FieldDescriptor.TYPE_ENUM:
        names = [v.name for v in fd.enum_type.values]
        if not isinstance(value, str) or value not in fd.enum_type.values_by_name:
            found.add(path, "must be one of " + ", ".join(names))
        return value
    if kind == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            found.add(path, "must be a base64 string")
        return value
    if fd.cpp_type in _INT_RANGES:
        return _integer(fd, value, path, found)
    return _floating(value, path, found)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape
        return False
    return True


def _integer(fd: FieldDescriptor, value: Any, path: str, found: _Violations) -> Any:
    low, high = _INT_RANGES[fd.cpp_type]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        # JSON Schema and proto3 JSON both read 708.0 as the integer 708.
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        found.add(path, "must be an integer")
        return value
    if isinstance(value, str):
        if not _INTEGER.fullmatch(value):
            found.add(path, "must be an integer written with the digits 0-9")
            return value
        if len(value.lstrip("-").lstrip("0")) > 20:
            found.add(path, f"must be an integer from {low} to {high}")
            return value
    number = int(value)
    if not low <= number <= high:
        found.add(path, f"must be an integer from {low} to {high}")
    return value


def _floating(value: Any, path: str, found: _Violations) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or \
            (isinstance(value, str) and not _NUMBER.fullmatch(value)):
        found.add(path, "must be a number")
    return value


def parse_time(text: str) -> tuple[datetime.datetime, str]:
    """An RFC 3339 time (`T` and `Z` upper case, offset within ±23:59) as (the UTC moment to
    the second, its fraction such as ".250"); ValueError with a front-end sentence if not."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"must be an RFC 3339 time such as {TIME_EXAMPLE}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction, zone = match.group(7) or "", match.group(8)
    offset = datetime.timedelta(0)
    if zone != "Z":
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError("has a time-zone offset beyond ±23:59")
        offset = datetime.timedelta(hours=hours, minutes=minutes) * (-1 if zone[0] == "-" else 1)
    try:
        local = datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        raise ValueError("is not a real date and time") from None
    try:
        moment = local.replace(tzinfo=datetime.timezone(offset)).astimezone(datetime.timezone.utc)
    except OverflowError:
        raise ValueError("is outside the years 0001 to 9999") from None
    if not _MIN_TIME <= moment <= _MAX_TIME:
        raise ValueError("is outside the years 0001 to 9999")
    return moment, fraction


def timestamp(value: Any, path: str, found: _Violations) -> Any:
    """Checks a Timestamp and rewrites it in UTC, the one form json_format reads exactly."""
    if not isinstance(value, str):
        found.add(path, f"must be an RFC 3339 time such as {TIME_EXAMPLE}")
        return value
    try:
        moment, fraction = parse_time(value)
    except ValueError as error:
        found.add(path, str(error))
        return value
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
            f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}{fraction}Z")
