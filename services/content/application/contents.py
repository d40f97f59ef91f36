"""Upserting content by code and serving published content to the channels."""
from __future__ import annotations

from siyu_kit import context, retry
from siyu_kit.errors import FieldViolation, InvalidArgument, NotFound, Violations
from siyu_kit.ids import is_id, new_id

from services.content.application.clock import Clock, now_ms
from services.content.application.ports import ContentRepository, PersonaRepository, Products
from services.content.domain.contents import Content, ContentFields, check_content
from services.content.domain.guides import require_manage
from services.content.domain.personas import Persona


class ContentUseCases:
    def __init__(self, contents: ContentRepository, personas: PersonaRepository, products: Products | None = None,
                 clock: Clock = now_ms):
        self.contents = contents
        self.personas = personas
        # Checks linked products against the catalog; None: not checked.
        self.products = products
        self.clock = clock

    async def upsert(self, fields: ContentFields, requested_status: str) -> tuple[Content, bool]:
        """`requested_status` empty: DRAFT for new content, unchanged otherwise. Linked
        products must be the merchant's (any status), asked of the catalog before writing."""
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        ctx.require_staff("OPERATOR", "GUIDE")
        fields = fields.normalized()
        v = Violations()
        check_content(fields, requested_status, v)
        v.raise_if_any()
        persona = await self.personas.get(merchant_id, fields.persona_id)
        if persona is None:
            raise NotFound("no such persona", violations=[FieldViolation("persona_id", "no such persona")])
        # A guide writes content only for the personas assigned to them.
        require_manage(persona.guide_ids, ctx.caller_id, ctx.roles)
        await self._check_products(fields.product_ids)

        async def attempt() -> tuple[Content, bool]:
            content = await self.contents.by_code(merchant_id, fields.code)
            if content is not None and content.fields.persona_id != persona.id:
                # Moving content away from a persona needs the right to manage that one too.
                former = await self.personas.get(merchant_id, content.fields.persona_id)
                require_manage(former.guide_ids if former else (), ctx.caller_id, ctx.roles)
            if content is None:
                content = Content.create(new_id("cnt"), merchant_id, fields, requested_status, self.clock())
                await self.contents.add(content)
                return content, True
            if content.revise(fields, requested_status, self.clock()):
                await self.contents.save(content)
            return content, False

        return await retry.on_conflict(attempt, gave_up="the content was changed concurrently; try again",
                                       reason="VERSION_CONFLICT")

    async def _check_products(self, product_ids: tuple[str, ...]) -> None:
        if self.products is None or not product_ids:
            return
        missing = set(await self.products.missing_products(list(product_ids)))
        if missing:
            raise NotFound("a linked product does not exist", reason="PRODUCT_NOT_FOUND", violations=[
                FieldViolation(f"product_ids[{i}]", "no such product") for i, p in enumerate(product_ids)
                if p in missing])

    async def attribution_found(self, persona_id: str, content_id: str) -> tuple[bool, bool]:
        """Whether the persona and the content (each when given) exist in the caller's
        merchant, in any status: an order keeps its source even after the content is archived."""
        merchant_id = context.current().require_merchant()
        v = Violations()
        v.check(not persona_id or is_id(persona_id, "per"), "persona_id", "empty or a persona id (per_…)")
        v.check(not content_id or is_id(content_id, "cnt"), "content_id", "empty or a content id (cnt_…)")
        v.raise_if_any()
        persona = await self.personas.get(merchant_id, persona_id) if persona_id else True
        content = await self.contents.get(merchant_id, content_id) if content_id else True
        return persona is not None, content is not None

    async def get_any(self, content_id: str) -> Content:
        """Content of the caller's merchant in any status (staff views)."""
        merchant_id = context.current().require_merchant()
        _check_content_id(content_id)
        content = await self.contents.get(merchant_id, content_id)
        if content is None:
            raise NotFound("no such content", violations=[FieldViolation("content_id", "no such content")])
        return content

    async def get_published(self, content_id: str) -> tuple[Content, Persona | None]:
        """What a channel may show: published content with its persona; anything else,
        including drafts and archived items, does not exist for the channel."""
        merchant_id = context.current().require_merchant()
        _check_content_id(content_id)
        content = await self.contents.get(merchant_id, content_id)
        if content is None or not content.visible_to(context.current().channel):
            raise NotFound("no such content", violations=[FieldViolation("content_id", "no such content")])
        persona = await self.personas.get(merchant_id, content.fields.persona_id)
        return content, persona


def _check_content_id(content_id: str) -> None:
    if not is_id(content_id, "cnt"):
        raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS",
                              violations=[FieldViolation("content_id", "a content id (cnt_…)")])
