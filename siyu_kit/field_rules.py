"""The `(siyu.common.v1.field)` rules declared on request fields, checked by every service
before a use case runs. The gateway's OpenAPI document states the same rules, so what the
document allows the service takes, and what it forbids the service refuses.

Field names in violations follow the API: `lines[2].quantity`, `settings.shipping_fee`,
`skus[0].attributes[color]`. A request with any violation reaches no use case.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor as F
from google.protobuf.message import Message
from siyu.common.v1 import common_pb2

from siyu_kit.errors import FieldViolation, InvalidArgument

INTEGERS = {F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32, F.TYPE_UINT32, F.TYPE_FIXED32,
            F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64, F.TYPE_UINT64, F.TYPE_FIXED64}


@dataclass(frozen=True)
class Rules:
    required: bool = False
    pattern: re.Pattern | None = None
    min_len: int = 0
    max_len: int = 0
    min: int | None = None
    max: int | None = None
    max_items: int = 0
    key_pattern: re.Pattern | None = None
    value_max_len: int = 0
    # The patterns as declared (JSON Schema's dialect), for documents and messages.
    pattern_source: str = ""
    key_pattern_source: str = ""
    description: str = ""  # what a value missing the pattern is told


NO_RULES = Rules()


# ECMAScript's `\s` (what JSON Schema and the clients mean), which is not Python's: Python's
# also takes \x1c-\x1f and \x85, ECMAScript's also takes \ufeff.
ECMA_SPACE = "\t\n\v\f\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


def compile_pattern(pattern: str) -> re.Pattern:
    r"""A declared pattern searched as JSON Schema does: `$` means the very end (Python's `$`
    also matches before a trailing newline, ECMAScript's does not), and `\s`/`\S` are
    ECMAScript's white space. Inside a class `\S` is Python's plus \x1c-\x1f and \x85
    (only \ufeff still differs there)."""
    out, in_class, escaped = [], False, False
    for ch in pattern:
        if escaped:
            escaped = False
            if ch == "s":
                out.append(ECMA_SPACE if in_class else f"[{ECMA_SPACE}]")
            elif ch == "S":
                out.append("\\S\x1c-\x1f\x85" if in_class else f"[^{ECMA_SPACE}]")
            else:
                out.append("\\" + ch)
        elif ch == "\\":
            escaped = True
        elif ch == "[":
            in_class = True
            out.append(ch)
        elif ch == "]":
            in_class = False
            out.append(ch)
        elif ch == "$" and not in_class:
            out.append(r"\Z")
        else:
            out.append(ch)
    return re.compile("".join(out))


def rules_of(fd: F) -> Rules | None:
    """The declared rules of a field, or None."""
    options = fd.GetOptions()
    if not options.HasExtension(common_pb2.field):
        return None
    ext = options.Extensions[common_pb2.field]
    return Rules(required=ext.required, pattern=compile_pattern(ext.pattern) if ext.pattern else None,
                 min_len=ext.min_len, max_len=ext.max_len,
                 min=ext.min if ext.HasField("min") else None, max=ext.max if ext.HasField("max") else None,
                 max_items=ext.max_items, key_pattern=compile_pattern(ext.key_pattern) if ext.key_pattern else None,
                 value_max_len=ext.value_max_len, pattern_source=ext.pattern, key_pattern_source=ext.key_pattern,
                 description=ext.description)


def is_map(fd: F) -> bool:
    return fd.type == F.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry


def is_repeated(fd: F) -> bool:
    return fd.is_repeated


def _checked(fd: F) -> bool:
    # Enums are always checked: binary and JSON callers can send numbers the contract does not know.
    return rules_of(fd) is not None or fd.type == F.TYPE_ENUM


@functools.lru_cache(maxsize=None)
def _plan(descriptor: Descriptor) -> tuple[tuple[F, Rules | None], ...]:
    """The fields of a message that carry rules or lead to a message that does."""
    return tuple((fd, rules_of(fd)) for fd in descriptor.fields
                 if _checked(fd) or (fd.type == F.TYPE_MESSAGE and _has_rules(_target(fd))))


def _target(fd: F) -> Descriptor:
    return fd.message_type.fields_by_name["value"].message_type if is_map(fd) else fd.message_type


@functools.lru_cache(maxsize=None)
def _has_rules(descriptor: Descriptor | None, _seen: frozenset = frozenset()) -> bool:
    if descriptor is None or descriptor.full_name.startswith("google.") or descriptor.full_name in _seen:
        return False
    seen = _seen | {descriptor.full_name}
    for fd in descriptor.fields:
        if _checked(fd):
            return True
        if fd.type == F.TYPE_MESSAGE and _has_rules(_target(fd), seen):
            return True
    return False


def _scalar(fd: F, rules: Rules, value, name: str, out: list[FieldViolation]) -> None:
    if fd.type == F.TYPE_STRING:
        if not value:
            if rules.required:
                out.append(FieldViolation(name, "required"))
            return
        length = len(value)
        if rules.max_len and length > rules.max_len or length < rules.min_len:
            low = max(rules.min_len, 1)
            out.append(FieldViolation(name, f"{low} to {rules.max_len} characters" if rules.max_len
                                      else f"at least {low} characters"))
        elif rules.pattern is not None and not rules.pattern.search(value):
            out.append(FieldViolation(name, rules.description or f"must match {rules.pattern_source}"))
    elif fd.type in INTEGERS:
        if (rules.min is not None and value < rules.min) or (rules.max is not None and value > rules.max):
            out.append(FieldViolation(name, _range(rules)))
        elif rules.required and value == 0:
            out.append(FieldViolation(name, "required"))
    elif fd.type == F.TYPE_ENUM:
        if fd.enum_type.values_by_number.get(value) is None:
            out.append(FieldViolation(name, "one of " + ", ".join(v.name for v in fd.enum_type.values if v.number)))
        elif rules.required and value == 0:
            out.append(FieldViolation(name, "required"))
    elif fd.type == F.TYPE_BYTES:
        if rules.max_len and len(value) > rules.max_len:
            out.append(FieldViolation(name, f"at most {rules.max_len} bytes"))


def _entry(rules: Rules, key, item, name: str, out: list[FieldViolation]) -> None:
    if rules.key_pattern is not None and not rules.key_pattern.search(str(key)):
        out.append(FieldViolation(name, "the key: " + (rules.description or f"must match {rules.key_pattern_source}")))
    if rules.value_max_len and isinstance(item, str) and len(item) > rules.value_max_len:
        out.append(FieldViolation(name, f"at most {rules.value_max_len} characters"))


def _element(rules: Rules | None) -> Rules:
    if rules is None:
        return NO_RULES
    # An element is never "unset": an empty string is checked like any given value.
    return Rules(required=True, pattern=rules.pattern, min_len=rules.min_len, max_len=rules.max_len,
                 min=rules.min, max=rules.max, pattern_source=rules.pattern_source, description=rules.description)


def _range(rules: Rules) -> str:
    if rules.min is not None and rules.max is not None:
        return f"{rules.min} to {rules.max}"
    return f"at least {rules.min}" if rules.min is not None else f"at most {rules.max}"


def _walk(message: Message, prefix: str, out: list[FieldViolation]) -> None:
    for fd, rules in _plan(message.DESCRIPTOR):
        name = prefix + fd.name
        value = getattr(message, fd.name)
        if is_map(fd) or is_repeated(fd):
            count = len(value)
            if rules is not None and rules.required and count == 0:
                out.append(FieldViolation(name, "at least one"))
            if rules is not None and rules.max_items and count > rules.max_items:
                # Too many elements: say so once, not once per element.
                out.append(FieldViolation(name, f"at most {rules.max_items}"))
                continue
            if is_map(fd):
                value_fd = fd.message_type.fields_by_name["value"]
                for key, item in value.items():
                    if value_fd.type == F.TYPE_MESSAGE:
                        _walk(item, f"{name}[{key}].", out)
                    elif rules is not None:
                        _entry(rules, key, item, f"{name}[{key}]", out)
            else:
                for i, item in enumerate(value):
                    if fd.type == F.TYPE_MESSAGE:
                        _walk(item, f"{name}[{i}].", out)
                    else:
                        _scalar(fd, _element(rules), item, f"{name}[{i}]", out)
        elif fd.type == F.TYPE_MESSAGE:
            if message.HasField(fd.name):
                _walk(value, name + ".", out)
            elif rules is not None and rules.required:
                out.append(FieldViolation(name, "required"))
        elif fd.has_presence and not message.HasField(fd.name):
            continue  # an `optional` field left out is not checked
        else:
            _scalar(fd, rules or NO_RULES, value, name, out)


def violations(message: Message) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    _walk(message, "", out)
    return out


def check(message: Message) -> None:
    """INVALID_ARGUMENT with every declared rule the request breaks."""
    found = violations(message)
    if found:
        raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS", violations=found)
