"""Repositories: every query filters by merchant; updates are single-document,
compare-and-set on `version`, or guarded by the cause they apply (funnel_store). They return domain
objects and raise domain errors; blocking pymongo calls run through siyu_kit.db.run_sync."""
from __future__ import annotations

from mongoengine.errors import NotUniqueError
from pymongo.errors import DuplicateKeyError

from siyu_kit.db import run_sync
from siyu_kit.repository import insert_new, save_change

from services.content.adapters.documents import ContentDoc, PersonaDoc
from services.content.adapters.feed_messages import content_events
from services.content.domain.contents import Content, ContentFields
from services.content.domain.errors import CodeTaken
from services.content.domain.personas import Persona, PersonaFields


def _persona(doc: dict) -> Persona:
    return Persona(id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc["version"]),
                   updated_ms=int(doc.get("updated_ms") or 0), guide_ids=tuple(doc.get("guide_ids") or ()),
                   follower_count=max(0, int(doc.get("follower_count") or 0)), fields=PersonaFields(
                       code=doc["code"], name=doc["name"], avatar_url=doc.get("avatar_url", ""),
                       expertise=doc.get("expertise", ""), bio=doc.get("bio", ""), tone=doc.get("tone", ""),
                       featured_product_ids=tuple(doc.get("featured_product_ids") or ())))


def _persona_fields(f: PersonaFields) -> dict:
    # Never the follower count: only its conditional increments write it.
    return {"code": f.code, "name": f.name, "avatar_url": f.avatar_url, "expertise": f.expertise,
            "bio": f.bio, "tone": f.tone, "featured_product_ids": list(f.featured_product_ids)}


class PersonaRepository:
    async def by_code(self, merchant_id: str, code: str) -> Persona | None:
        doc = await run_sync(PersonaDoc._get_collection().find_one, {"merchant_id": merchant_id, "code": code})
        return _persona(doc) if doc else None

    async def get(self, merchant_id: str, persona_id: str) -> Persona | None:
        doc = await run_sync(PersonaDoc._get_collection().find_one, {"_id": persona_id, "merchant_id": merchant_id})
        return _persona(doc) if doc else None

    async def page(self, merchant_id: str, after_id: str, limit: int, guide_id: str = "") -> list[Persona]:
        query: dict = {"merchant_id": merchant_id}
        if guide_id:
            query["guide_ids"] = {"$in": [guide_id]}
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
                       created_ms=persona.updated_ms, updated_ms=persona.updated_ms, follower_count=0,
                       guide_ids=list(persona.guide_ids), **_persona_fields(persona.fields)).save(force_insert=True)
        except (NotUniqueError, DuplicateKeyError) as exc:
            raise CodeTaken(persona.fields.code) from exc

    async def save(self, persona: Persona) -> None:
        await run_sync(save_change, PersonaDoc._get_collection(),
                       {"_id": persona.id, "merchant_id": persona.merchant_id},
                       {"$set": {**_persona_fields(persona.fields), "guide_ids": list(persona.guide_ids),
                                 "updated_ms": persona.updated_ms}},
                       version=persona.version)
        persona.version = persona.next_version


def _content(doc: dict) -> Content:
    return Content(
        id=doc["_id"], merchant_id=doc["merchant_id"], version=int(doc["version"]), status=doc["status"],
        published_at_ms=int(doc.get("published_at_ms") or 0), updated_ms=int(doc.get("updated_ms") or 0),
        fields=ContentFields(code=doc["code"], persona_id=doc["persona_id"], type=doc["type"],
                             title=doc["title"], body=doc.get("body", ""),
                             product_ids=tuple(doc.get("product_ids") or ()),
                             media_urls=tuple(doc.get("media_urls") or ()), topics=tuple(doc.get("topics") or ()),
                             channels=tuple(doc.get("channels") or ()),
                             publish_at_ms=int(doc.get("publish_at_ms") or 0)))


def _content_fields(c: Content) -> dict:
    f = c.fields
    return {"code": f.code, "persona_id": f.persona_id, "type": f.type, "title": f.title, "body": f.body,
            "product_ids": list(f.product_ids), "status": c.status, "published_at_ms": c.published_at_ms,
            "media_urls": list(f.media_urls), "topics": list(f.topics), "channels": list(f.channels),
            "visible_on": list(f.visible_on), "publish_at_ms": f.publish_at_ms, "feed_key": c.feed_key}


class ContentRepository:
    async def by_code(self, merchant_id: str, code: str) -> Content | None:
        doc = await run_sync(ContentDoc._get_collection().find_one, {"merchant_id": merchant_id, "code": code})
        return _content(doc) if doc else None

    async def get(self, merchant_id: str, content_id: str) -> Content | None:
        doc = await run_sync(ContentDoc._get_collection().find_one, {"_id": content_id, "merchant_id": merchant_id})
        return _content(doc) if doc else None

    async def page(self, merchant_id: str, persona_id: str, status: str, after_id: str,
                   limit: int, persona_ids: list[str] | None = None) -> list[Content]:
        query: dict = {"merchant_id": merchant_id}
        if persona_id:
            query["persona_id"] = persona_id
        elif persona_ids is not None:
            query["persona_id"] = {"$in": persona_ids}
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
        doc = {"_id": content.id, "merchant_id": content.merchant_id, "version": content.version,
               "created_ms": content.updated_ms, "updated_ms": content.updated_ms, **_content_fields(content)}
        if not insert_new(ContentDoc._get_collection(), doc, content_events(content, content.version)):
            raise CodeTaken(content.fields.code)

    async def save(self, content: Content) -> None:
        # The lists are replaced whole under the version check (no $push); a publication's
        # event goes in the same write.
        await run_sync(save_change, ContentDoc._get_collection(),
                       {"_id": content.id, "merchant_id": content.merchant_id},
                       {"$set": {**_content_fields(content), "updated_ms": content.updated_ms}},
                       content_events(content, content.next_version), version=content.version)
        content.version = content.next_version
