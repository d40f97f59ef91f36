"""Storage schema and indexes. Times are epoch milliseconds (ints): the embedded server
returns datetimes written by `$set` as strings, ints survive every store."""
from __future__ import annotations

from mongoengine import Document, IntField, ListField, LongField, StringField

from siyu_kit.events.documents import OutboxDocument


class PersonaDoc(Document):
    meta = {"collection": "personas", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "code"], "unique": True},
                        {"fields": ["merchant_id", "guide_ids"]}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    code = StringField(required=True)
    name = StringField(required=True)
    avatar_url = StringField(default="")
    expertise = StringField(default="")
    bio = StringField(default="")
    tone = StringField(default="")
    featured_product_ids = ListField(StringField())
    guide_ids = ListField(StringField())
    # Moved only by one conditional $inc per real follow or unfollow (adapters/feed_store.py).
    follower_count = LongField(default=0)
    version = IntField(required=True)
    created_ms = LongField(required=True)
    updated_ms = LongField(required=True)


class ContentDoc(OutboxDocument):
    meta = {"collection": "contents", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "code"], "unique": True},
                        {"fields": ["merchant_id", "persona_id"]},
                        # Feeds and persona pages: published content by feed key.
                        {"fields": ["merchant_id", "status", "persona_id", "-feed_key"]},
                        {"fields": ["merchant_id", "status", "-feed_key"]},
                        # The publishing job, over every merchant.
                        {"fields": ["status", "publish_at_ms"]},
                        {"fields": ["outbox_pending"]}]}
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
    media_urls = ListField(StringField())
    topics = ListField(StringField())
    channels = ListField(StringField())  # as staff set them; empty: every channel
    visible_on = ListField(StringField())  # the channels it shows on, spelled out
    publish_at_ms = LongField(default=0)
    # "<published_at_ms, 15 digits>:<id>" while PUBLISHED, "" otherwise: one string key to
    # page by (domain.contents.feed_key).
    feed_key = StringField(default="")
    version = IntField(required=True)
    created_ms = LongField(required=True)
    updated_ms = LongField(required=True)


class FollowDoc(OutboxDocument):
    """A member following a persona: `_id` = merchant:member:persona, so there is one per
    pair; `active` (0/1) is the state, flipped by conditional updates. Carries an outbox
    (PersonaFollowed, PersonaUnfollowed)."""
    meta = {"collection": "persona_follows", "auto_create_index": False,
            "indexes": [{"fields": ["merchant_id", "member_id", "active", "-follow_key"]},
                        {"fields": ["merchant_id", "persona_id", "active"]},
                        {"fields": ["outbox_pending"]}]}
    id = StringField(primary_key=True)
    merchant_id = StringField(required=True)
    member_id = StringField(required=True)
    persona_id = StringField(required=True)
    active = IntField(required=True)
    followed_ms = LongField(required=True)
    # "<followed_ms, 15 digits>:<persona id>": the member's list pages by it.
    follow_key = StringField(required=True)
    changed_ms = LongField(required=True)


ALL = (PersonaDoc, ContentDoc, FollowDoc)  # the funnel documents: funnel_store.py


def ensure_indexes() -> None:
    for doc in ALL:
        doc.ensure_indexes()
