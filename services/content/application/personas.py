"""Upserting personas by their merchant-chosen code."""
from __future__ import annotations

from siyu_kit import context, retry
from siyu_kit.errors import FieldViolation, InvalidArgument, NotFound, Violations
from siyu_kit.ids import is_id, new_id

from services.content.application.clock import Clock, now_ms
from services.content.application.ports import PersonaRepository, Products
from services.content.domain.guides import require_manage
from services.content.domain.personas import Persona, PersonaFields, check_persona


class PersonaUseCases:
    def __init__(self, repo: PersonaRepository, clock: Clock = now_ms, products: Products | None = None):
        self.repo = repo
        self.clock = clock
        # Checks featured products against the catalog; None: not checked.
        self.products = products

    async def upsert(self, fields: PersonaFields) -> tuple[Persona, bool]:
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        ctx.require_staff("OPERATOR", "GUIDE")
        fields = fields.normalized()
        v = Violations()
        check_persona(fields, v)
        v.raise_if_any()
        await self._check_featured(fields.featured_product_ids)

        async def attempt() -> tuple[Persona, bool]:
            persona = await self.repo.by_code(merchant_id, fields.code)
            # A guide edits the personas assigned to them and creates none.
            require_manage(persona.guide_ids if persona else (), ctx.caller_id, ctx.roles)
            if persona is None:
                persona = Persona.create(new_id("per"), merchant_id, fields, self.clock())
                await self.repo.add(persona)
                return persona, True
            if persona.revise(fields, self.clock()):
                await self.repo.save(persona)
            return persona, False

        return await retry.on_conflict(attempt, gave_up="the persona was changed concurrently; try again",
                                       reason="VERSION_CONFLICT")

    async def _check_featured(self, product_ids: tuple[str, ...]) -> None:
        if self.products is None or not product_ids:
            return
        missing = set(await self.products.missing_products(list(product_ids)))
        if missing:
            raise NotFound("a featured product does not exist", reason="PRODUCT_NOT_FOUND", violations=[
                FieldViolation(f"featured_product_ids[{i}]", "no such product") for i, p in enumerate(product_ids)
                if p in missing])

    async def get(self, persona_id: str, field: str = "persona_id") -> Persona:
        """A persona of the caller's merchant, or NotFound naming `field`."""
        merchant_id = context.current().require_merchant()
        if not is_id(persona_id, "per"):
            raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS",
                                  violations=[FieldViolation(field, "a persona id (per_…)")])
        persona = await self.repo.get(merchant_id, persona_id)
        if persona is None:
            raise NotFound("no such persona", violations=[FieldViolation(field, "no such persona")])
        return persona
