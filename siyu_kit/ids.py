"""Prefixed, time-sortable ids: `ord_01J…` (ULID). They are the `_id` of their documents."""
from __future__ import annotations

import re

from ulid import ULID

_ID = re.compile(r"^(?P<prefix>[a-z]{2,5})_(?P<body>[0-9A-HJKMNP-TV-Z]{26})$")


def new_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"


def is_id(value: str, prefix: str) -> bool:
    match = _ID.match(value or "")
    return bool(match) and match.group("prefix") == prefix
