"""Keyset page tokens for the lists staff and members page through. A token is opaque to
clients: it carries where the previous page stopped and a digest of the filters and sort
that issued it, so a token replayed with other filters is a field violation, not a page of
something else."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re

from siyu_kit.errors import Violations

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
# Where a page stops, unless a listing says otherwise: the last id it showed.
ID = re.compile(r"^[a-z]{3}_[0-9A-HJKMNP-TV-Z]{26}$")


def fingerprint(**filters) -> str:
    """The digest of a listing's filters and sort that its tokens carry."""
    raw = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def encode_cursor(fp: str, position: str) -> str:
    raw = json.dumps([fp, position], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(v: Violations, token: str, fp: str, position: re.Pattern = ID) -> str:
    """Where to continue after ("" for the first page); a violation on page_token for a
    token no page of this listing issued, or one issued for other filters or another sort."""
    if not token:
        return ""
    try:
        got, at = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        got, at = None, None
    if not (isinstance(got, str) and isinstance(at, str) and position.match(at)):
        v.add("page_token", "not a token from a previous page")
        return ""
    if got != fp:
        v.add("page_token", "issued for other filters or another sort")
        return ""
    return at


def page_size(v: Violations, size: int) -> int:
    """The page size asked for (0: the default); a violation outside 0..MAX_PAGE_SIZE."""
    v.check(0 <= size <= MAX_PAGE_SIZE, "page_size", f"1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}")
    return size or DEFAULT_PAGE_SIZE


def next_page(rows: list, size: int, fp: str, position=lambda row: row.id) -> tuple[list, str]:
    """The page of `rows` (read with one more than `size`) and the token for the next one,
    empty when this page is the last."""
    if len(rows) > size:
        rows = rows[:size]
        return rows, encode_cursor(fp, position(rows[-1]))
    return rows, ""
