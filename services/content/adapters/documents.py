"""Storage schema and indexes. Times are epoch milliseconds (ints): the embedded server
returns datetimes written by `$set` as strings, ints survive every store."""
from __future__ import annotations

from mongoengine import Document, IntField, ListField, LongField, StringField


class PersonaDoc(Document):
    meta = {"collection": "personas", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "code"], "unique": True}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    code = StringField(required=True)
    name = StringField(required=True)
    avatar_url = StringField(default="")
    expertise = StringField(default="")
    bio = StringField(default="")
    tone = StringField(default="")
    version = IntField(required=True)
    created_ms = LongField(required=True)
    updated_ms = LongField(required=True)


class ContentDoc(Document):
    meta = {"collection": "contents", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "code"], "unique": True},
                        {"fields": ["merchant_id", "persona_id"]}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    code = StringField(required=True)
    persona_id = StringField(required=True)
    type = StringField(required=True)
    title = StringField(required=True)
    body = StringField(default="")
    product_ids = ListField(StringField())
    status = StringField(required=True)
    published_at_ms = LongField(default=0)
    version = IntField(required=True)
    created_ms = LongField(required=True)
    updated_ms = LongField(required=True)


ALL = (PersonaDoc, ContentDoc)  # the funnel documents: funnel_store.py


def ensure_indexes() -> None:
    for doc in ALL:
        doc.ensure_indexes()
