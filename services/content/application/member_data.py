"""The content service's part of a member's personal data (PIPL Art. 45 and 47): each
kind of data it keeps is a part (follows here; engagement adds its own) with a section of
the export and an erasure. Erasure runs every part, then acknowledges to the member
service; a redelivered member.erased runs them again, which changes nothing."""
from __future__ import annotations

from typing import Awaitable, Callable, Protocol

from siyu_kit import context
from siyu_kit.ids import is_id, new_id
from siyu_kit.errors import FieldViolation, InvalidArgument

from services.content.application.clock import from_ms
from services.content.application.feed_ports import FollowerCounts, FollowRepository, MemberDataPart
from services.content.application.ports import PersonaRepository


class FollowsData:
    """The personas a member follows. Erasure deletes the follows and takes each one that
    was active off its persona's follower count (one conditional decrement each)."""
    name = "follows"

    def __init__(self, follows: FollowRepository, counts: FollowerCounts, personas: PersonaRepository):
        self.follows = follows
        self.counts = counts
        self.personas = personas

    async def export(self, merchant_id: str, member_id: str) -> list[dict]:
        rows: list[dict] = []
        below = ""
        while True:
            page = await self.follows.page(merchant_id, member_id, below, 200)
            for _, follow in page:
                persona = await self.personas.get(merchant_id, follow.persona_id)
                rows.append({"persona_id": follow.persona_id, "persona_name": persona.fields.name if persona else "",
                             "followed_at": from_ms(follow.followed_ms).isoformat()})
            if len(page) < 200:
                return rows
            below = page[-1][0]

    async def erase(self, merchant_id: str, member_id: str) -> None:
        for persona_id in await self.follows.remove_member(merchant_id, member_id):
            await self.counts.add(merchant_id, persona_id, -1)


class EngagementData:
    """Views, likes, comments, reports, share codes and opens (EngagementUseCases)."""
    name = "engagement"

    def __init__(self, engagement):
        self.engagement = engagement

    async def export(self, merchant_id: str, member_id: str) -> dict:
        return await self.engagement.export_member(merchant_id, member_id)

    async def erase(self, merchant_id: str, member_id: str) -> None:
        await self.engagement.erase_member(merchant_id, member_id)


class LiveViewing(Protocol):
    async def sessions_watched(self, merchant_id: str, member_id: str) -> list[str]: ...

    async def forget(self, merchant_id: str, member_id: str) -> None: ...


class LiveViewingData:
    """The live sessions a member watched. Erasure forgets the member; the sessions' unique
    viewer figures keep counting them (a number, not a person)."""
    name = "live_sessions_watched"

    def __init__(self, viewing: LiveViewing):
        self.viewing = viewing

    async def export(self, merchant_id: str, member_id: str) -> list[dict]:
        return [{"live_session_id": s} for s in await self.viewing.sessions_watched(merchant_id, member_id)]

    async def erase(self, merchant_id: str, member_id: str) -> None:
        await self.viewing.forget(merchant_id, member_id)


class MemberData:
    def __init__(self, parts: list[MemberDataPart],
                 acknowledge: Callable[[str, str], Awaitable[None]] | None = None,
                 derived: list[Callable[[str, str], Awaitable[object]]] | None = None):
        self.parts = parts
        # Erasures of data derived from what other services export (the purchase facts of
        # the repeat-purchase reports come from the orders): erased, not exported twice.
        self.derived = derived if derived is not None else []
        # Tells the member service this service is done (AcknowledgeErasure), in the merchant.
        self.acknowledge = acknowledge

    async def export(self, member_id: str) -> dict:
        merchant_id = context.current().require_merchant()
        if not is_id(member_id, "mem"):
            raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS",
                                  violations=[FieldViolation("member_id", "a mem_ id")])
        return {part.name: await part.export(merchant_id, member_id) for part in self.parts}

    async def erase(self, merchant_id: str, member_id: str) -> None:
        """The consumer of member.erased: every part, then the acknowledgement."""
        token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=merchant_id))
        try:
            for part in self.parts:
                await part.erase(merchant_id, member_id)
            for erase in self.derived:
                await erase(merchant_id, member_id)
            if self.acknowledge is not None:
                await self.acknowledge(member_id, "content")
        finally:
            context.reset(token)
