"""Repositories: every query filters by merchant; updates are single-document,
compare-and-set on `version`, or guarded by the cause they apply (funnel_store). They return domain
objects and raise domain errors; blocking pymongo calls run through siyu_kit.db.run_sync."""
from __future__ import annotations

from mongoengine.errors import NotUniqueError
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.repository import save_change

from services.content.adapters.documents import ContentDoc, PersonaDoc
from services.content.domain.contents import Content, ContentFields
from services.content.domain.errors import CodeTaken
from services.content.domain.personas import Persona, PersonaFields


def _persona(doc: dict) -> Persona:
    return Persona(id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc["version"]),
                   updated_ms=int(doc.get("updated_ms") or 0), fields=PersonaFields(
                       code=doc["code"], name=doc["name"], avatar_url=doc.get("avatar_url", ""),
                       expertise=doc.get("expertise", ""), bio=doc.get("bio", ""), tone=doc.get("tone", "")))


def _persona_fields(f: PersonaFields) -> dict:
    return {"code": f.code, "name": f.name, "avatar_url": f.avatar_url, "expertise": f.expertise,
            "bio": f.bio, "tone": f.tone}


class PersonaRepository:
    async def by_code(self, merchant_id: str, code: str) -> Persona | None:
        doc = await run_sync(PersonaDoc._get_collection().find_one, {"merchant_id": merchant_id, "code": code})
        return _persona(doc) if doc else None

    async def get(self, merchant_id: str, persona_id: str) -> Persona | None:
        doc = await run_sync(PersonaDoc._get_collection().find_one, {"_id": persona_id, "merchant_id": merchant_id})
        return _persona(doc) if doc else None

    async def page(self, merchant_id: str, after_id: str, limit: int) -> list[Persona]:
        query: dict = {"merchant_id": merchant_id}
        if after_id:
            query["_id"] = {"$lt": after_id}
        docs = await run_sync(lambda: list(PersonaDoc._get_collection().find(query).sort("_id", -1).limit(limit)))
        return [_persona(d) for d in docs]

    async def add(self, persona: Persona) -> None:
        await run_sync(self._insert, persona)

    @staticmethod
    def _insert(persona: Persona) -> None:
        try:
            PersonaDoc(id=persona.id, merchant_id=persona.merchant_id, version=persona.version,
                       created_ms=persona.updated_ms, updated_ms=persona.updated_ms,
                       **_persona_fields(persona.fields)).save(force_insert=True)
        except (NotUniqueError, DuplicateKeyError) as exc:
            raise CodeTaken(persona.fields.code) from exc

    async def save(self, persona: Persona) -> None:
        await run_sync(save_change, PersonaDoc._get_collection(),
                       {"_id": persona.id, "merchant_id": persona.merchant_id},
                       {"$set": {**_persona_fields(persona.fields), "updated_ms": persona.updated_ms}},
                       version=persona.version)
        persona.version = persona.next_version


def _content(doc: dict) -> Content:
    return Content(
        id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc["version"]), status=doc["status"],
        published_at_ms=int(doc.get("published_at_ms") or 0), updated_ms=int(doc.get("updated_ms") or 0),
        fields=ContentFields(code=doc["code"], persona_id=doc["persona_id"], type=doc["type"],
                             title=doc["title"], body=doc.get("body", ""),
                             product_ids=tuple(doc.get("product_ids") or ())))


def _content_fields(c: Content) -> dict:
    f = c.fields
    return {"code": f.code, "persona_id": f.persona_id, "type": f.type, "title": f.title, "body": f.body,
            "product_ids": list(f.product_ids), "status": c.status, "published_at_ms": c.published_at_ms}


class ContentRepository:
    async def by_code(self, merchant_id: str, code: str) -> Content | None:
        doc = await run_sync(ContentDoc._get_collection().find_one, {"merchant_id": merchant_id, "code": code})
        return _content(doc) if doc else None

    async def get(self, merchant_id: str, content_id: str) -> Content | None:
        doc = await run_sync(ContentDoc._get_collection().find_one, {"_id": content_id, "merchant_id": merchant_id})
        return _content(doc) if doc else None

    async def page(self, merchant_id: str, persona_id: str, status: str, after_id: str,
                   limit: int) -> list[Content]:
        query: dict = {"merchant_id": merchant_id}
        if persona_id:
            query["persona_id"] = persona_id
        if status:
            query["status"] = status
        if after_id:
            query["_id"] = {"$lt": after_id}
        docs = await run_sync(lambda: list(ContentDoc._get_collection().find(query).sort("_id", -1).limit(limit)))
        return [_content(d) for d in docs]

    async def add(self, content: Content) -> None:
        await run_sync(self._insert, content)

    @staticmethod
    def _insert(content: Content) -> None:
        try:
            ContentDoc(id=content.id, merchant_id=content.merchant_id, version=content.version,
                       created_ms=content.updated_ms, updated_ms=content.updated_ms,
                       **_content_fields(content)).save(force_insert=True)
        except (NotUniqueError, DuplicateKeyError) as exc:
            raise CodeTaken(content.fields.code) from exc

    async def save(self, content: Content) -> None:
        # The product list is replaced whole under the version check (no $push).
        await run_sync(save_change, ContentDoc._get_collection(),
                       {"_id": content.id, "merchant_id": content.merchant_id},
                       {"$set": {**_content_fields(content), "updated_ms": content.updated_ms}},
                       version=content.version)
        content.version = content.next_version
