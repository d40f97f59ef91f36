"""The staff console's lists of personas and content: newest first, with an opaque cursor
that is good only for the filters that issued it."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re

from siyu_kit import context
from siyu_kit.errors import Violations

from services.content.application.ports import ContentRepository, PersonaRepository
from services.content.domain.contents import LIFECYCLE, Content
from services.content.domain.personas import Persona

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
_ID = re.compile(r"^[a-z]{3}_[0-9A-HJKMNP-TV-Z]{26}$")
_PERSONA = re.compile(r"^per_[0-9A-HJKMNP-TV-Z]{26}$")


def _fingerprint(**filters) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]


def _cursor(fp: str, last_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([fp, last_id]).encode()).decode().rstrip("=")


def _after(v: Violations, token: str, fp: str) -> str:
    if not token:
        return ""
    try:
        got, last_id = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        got, last_id = None, None
    if not (isinstance(got, str) and isinstance(last_id, str) and _ID.match(last_id)):
        v.add("page_token", "not a token from a previous page")
        return ""
    v.check(got == fp, "page_token", "issued for other filters")
    return last_id


def _size(v: Violations, size: int) -> int:
    v.check(0 <= size <= MAX_PAGE_SIZE, "page_size", f"1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}")
    return size or DEFAULT_PAGE_SIZE


def _paged(rows: list, size: int, fp: str) -> tuple[list, str]:
    if len(rows) > size:
        rows = rows[:size]
        return rows, _cursor(fp, rows[-1].id)
    return rows, ""


class StaffLists:
    def __init__(self, personas: PersonaRepository, contents: ContentRepository):
        self.personas = personas
        self.contents = contents

    async def personas_page(self, page_size: int, page_token: str) -> tuple[list[Persona], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        v = Violations()
        size = _size(v, page_size)
        fp = _fingerprint(kind="personas")
        after = _after(v, page_token, fp)
        v.raise_if_any()
        return _paged(await self.personas.page(ctx.merchant_id, after, size + 1), size, fp)

    async def contents_page(self, persona_id: str, status: str, page_size: int,
                            page_token: str) -> tuple[list[Content], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        v = Violations()
        v.check(not persona_id or bool(_PERSONA.match(persona_id)), "persona_id", "a per_ id")
        v.check(not status or status in LIFECYCLE, "status", "one of " + ", ".join(LIFECYCLE))
        size = _size(v, page_size)
        fp = _fingerprint(kind="contents", persona_id=persona_id, status=status)
        after = _after(v, page_token, fp)
        v.raise_if_any()
        return _paged(await self.contents.page(ctx.merchant_id, persona_id, status, after, size + 1), size, fp)
