"""Every event subject a service declares in its events.proto is in the README's table of
services, in that service's "events it publishes" column (`siyu.x.y.{a,b}` stands for
`siyu.x.y.a` and `siyu.x.y.b`)."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from siyu.common.v1 import common_pb2

from siyu_kit.config import SERVICE_NAMES

ROOT = Path(__file__).resolve().parents[2]
CODE = re.compile(r"`([^`]+)`")
BRACES = re.compile(r"^(.*)\{([^}]*)\}(.*)$")


def expand(subject: str) -> set[str]:
    match = BRACES.match(subject)
    if not match:
        return {subject}
    head, options, tail = match.groups()
    return {s for option in options.split(",") for s in expand(head + option.strip() + tail)}


def published_in_readme() -> dict[str, set[str]]:
    """service → the subjects its row of the README's table names as published."""
    rows: dict[str, set[str]] = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] in SERVICE_NAMES:
            rows[cells[0]] = {s for code in CODE.findall(cells[2]) for s in expand(code)}
    return rows


def declared(service: str) -> set[str]:
    """Every subject of every event message in the service's events.proto."""
    if not (ROOT / "protos" / "siyu" / service / "v1" / "events.proto").exists():
        return set()
    module = importlib.import_module(f"siyu.{service}.v1.events_pb2")
    subjects: set[str] = set()
    for message in module.DESCRIPTOR.message_types_by_name.values():
        subjects.update(message.GetOptions().Extensions[common_pb2.event].subjects)
    return subjects


def test_expand_reads_braces():
    assert expand("siyu.a.b.{c,d}") == {"siyu.a.b.c", "siyu.a.b.d"}
    assert expand("siyu.a.b.c") == {"siyu.a.b.c"}


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_readme_names_every_published_event(service):
    rows = published_in_readme()
    assert service in rows, f"README.md's table of services has no row for {service}"
    missing = sorted(declared(service) - rows[service])
    assert missing == [], f"README.md's {service} row does not name {', '.join(missing)}"
