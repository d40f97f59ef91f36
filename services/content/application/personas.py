"""Upserting personas by their merchant-chosen code."""
from __future__ import annotations

from dataclasses import replace

from siyu_kit import context
from siyu_kit.db import run_sync
from siyu_kit.errors import Conflict, FieldViolation, InvalidArgument, NotFound, Violations
from siyu_kit.ids import is_id, new_id

from services.content.adapters.repositories import CodeTaken, PersonaRepository
from services.content.application.clock import Clock, now_ms
from services.content.domain.personas import Persona, PersonaFields, check_persona

# Compare-and-set attempts before a concurrent writer wins and the caller retries.
CAS_ATTEMPTS = 3


class PersonaUseCases:
    def __init__(self, repo: PersonaRepository, clock: Clock = now_ms):
        self.repo = repo
        self.clock = clock

    async def upsert(self, fields: PersonaFields) -> tuple[Persona, bool]:
        merchant_id = context.current().require_merchant()
        context.current().require_staff("OPERATOR")
        fields = fields.normalized()
        v = Violations()
        check_persona(fields, v)
        v.raise_if_any()
        for _ in range(CAS_ATTEMPTS):
            existing = await run_sync(self.repo.find_by_code, merchant_id, fields.code)
            if existing is None:
                persona = Persona(persona_id=new_id("per"), version=1, fields=fields)
                try:
                    await run_sync(self.repo.insert, merchant_id, persona, self.clock())
                    return persona, True
                except CodeTaken:
                    continue
            if existing.fields == fields:
                return existing, False
            updated = replace(existing, fields=fields, version=existing.version + 1)
            if await run_sync(self.repo.replace_if_version, merchant_id, updated, existing.version, self.clock()):
                return updated, False
        raise Conflict("the persona was changed concurrently; try again", reason="VERSION_CONFLICT")

    async def get(self, persona_id: str, field: str = "persona_id") -> Persona:
        """A persona of the caller's merchant, or NotFound naming `field`."""
        merchant_id = context.current().require_merchant()
        if not is_id(persona_id, "per"):
            raise InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS",
                                  violations=[FieldViolation(field, "a persona id (per_…)")])
        persona = await run_sync(self.repo.get, merchant_id, persona_id)
        if persona is None:
            raise NotFound("no such persona", violations=[FieldViolation(field, "no such persona")])
        return persona
