"""The staff console's lists of personas and content: newest first, with an opaque cursor
that is good only for the filters that issued it."""
from __future__ import annotations

import re

from siyu_kit import context, paging
from siyu_kit.errors import PermissionDenied, Violations

from services.content.application.ports import ContentRepository, PersonaRepository
from services.content.domain.contents import LIFECYCLE, Content
from services.content.domain.guides import sees_all
from services.content.domain.personas import Persona

# How many assigned personas a guide's content list covers.
GUIDE_PERSONAS_MAX = 100

_PERSONA = re.compile(r"^per_[0-9A-HJKMNP-TV-Z]{26}$")


class StaffLists:
    def __init__(self, personas: PersonaRepository, contents: ContentRepository):
        self.personas = personas
        self.contents = contents

    async def personas_page(self, page_size: int, page_token: str) -> tuple[list[Persona], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="personas")
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        # A guide sees only the personas assigned to them.
        guide = "" if sees_all(ctx.roles) else ctx.caller_id
        return paging.next_page(await self.personas.page(ctx.merchant_id, after, size + 1, guide_id=guide), size, fp)

    async def contents_page(self, persona_id: str, status: str, page_size: int,
                            page_token: str) -> tuple[list[Content], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        v = Violations()
        v.check(not persona_id or bool(_PERSONA.match(persona_id)), "persona_id", "a per_ id")
        v.check(not status or status in LIFECYCLE, "status", "one of " + ", ".join(LIFECYCLE))
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="contents", persona_id=persona_id, status=status)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        persona_ids = None
        if not sees_all(ctx.roles):
            # A guide sees only the content of the personas assigned to them.
            persona_ids = [p.id for p in await self.personas.page(ctx.merchant_id, "", GUIDE_PERSONAS_MAX,
                                                                  guide_id=ctx.caller_id)]
            if persona_id and persona_id not in persona_ids:
                raise PermissionDenied("this persona is not assigned to you", reason="PERSONA_NOT_ASSIGNED")
        return paging.next_page(await self.contents.page(ctx.merchant_id, persona_id, status, after, size + 1,
                                                         persona_ids=persona_ids), size, fp)
