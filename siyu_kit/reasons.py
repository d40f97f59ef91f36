"""Error reasons: the words a refused call carries (google.rpc.ErrorInfo.reason, and the
gateway's error.reason), declared once in the protos.

Each package's `ErrorReason` enum (protos/siyu/<package>/v1/errors.proto) lists the words
its service gives; siyu.common.v1.ErrorReason those of the kit, the gateway and more than
one service. The value names are the words as they travel. An enum's
`(siyu.common.v1.relays)` option names the enums whose reasons its service passes on.

A reason-less refusal travels with its status code's name (NOT_FOUND, ...), declared in
the common enum. A word that is declared nowhere is still sent (the caller is answered
as before) but logged as an error, once per word; tests/unit/test_error_reasons.py finds
every word the source raises and fails on an undeclared one.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from siyu_kit import logging as slog

log = slog.get("siyu.reasons")

COMMON = "siyu.common.v1"
ENUM_NAME = "ErrorReason"


@dataclass(frozen=True)
class Reason:
    word: str
    package: str  # e.g. siyu.order.v1


def _enums() -> list:
    """Every package's ErrorReason enum descriptor, found among the generated modules."""
    import siyu  # the generated code's namespace package (gen/siyu)

    found = []
    names = sorted({p.parent.parent.name for root in siyu.__path__ for p in Path(root).glob("*/v1/errors_pb2.py")})
    for name in names:
        module = importlib.import_module(f"siyu.{name}.v1.errors_pb2")
        enum = module.DESCRIPTOR.enum_types_by_name.get(ENUM_NAME)
        if enum is not None:
            found.append(enum)
    return sorted(found, key=lambda e: e.full_name)


@cache
def declared() -> dict[str, Reason]:
    """Every declared word and the package whose enum declares it."""
    out: dict[str, Reason] = {}
    for enum in _enums():
        for value in enum.values:
            if value.number == 0:
                continue
            if value.name in out:
                raise ValueError(f"{value.name} is declared twice: in {out[value.name].package} and "
                                 f"{enum.file.package}")
            out[value.name] = Reason(value.name, enum.file.package)
    return out


def is_declared(word: str) -> bool:
    return word in declared()


@cache
def of_package(package: str) -> tuple[str, ...]:
    """The words a call to a service of `package` (e.g. siyu.order.v1) may carry: its own,
    those of the enums it relays, and the common ones; in declaration order."""
    from siyu.common.v1 import common_pb2

    by_name = {enum.full_name: enum for enum in _enums()}
    own = by_name.get(f"{package}.{ENUM_NAME}")
    enums = [own] if own is not None else []
    if own is not None:
        enums += [by_name[name] for name in own.GetOptions().Extensions[common_pb2.relays] if name in by_name]
    if package != COMMON and f"{COMMON}.{ENUM_NAME}" in by_name:
        enums.append(by_name[f"{COMMON}.{ENUM_NAME}"])
    words: list[str] = []
    for enum in enums:
        words += [v.name for v in enum.values if v.number and v.name not in words]
    return tuple(words)


_reported: set[str] = set()


def check(word: str) -> str:
    """The word, after logging an error the first time an undeclared one is sent. Cheap:
    one set look-up per refusal."""
    if word and word not in declared() and word not in _reported:
        _reported.add(word)
        log.error("reason.undeclared", reason=word,
                  hint="declare it in an ErrorReason enum (protos/siyu/*/v1/errors.proto)")
    return word
