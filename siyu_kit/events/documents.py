"""The storage side of the outbox, for mongoengine documents that carry events."""
from __future__ import annotations

import mongoengine as me


class OutboxDocument(me.Document):
    """Base of every aggregate that carries its unsent events (see siyu_kit.events.outbox).
    Subclasses list `{"fields": ["outbox_pending"]}` in their indexes for the relay."""

    outbox = me.DictField()
    outbox_pending = me.IntField(default=0)
    outbox_seq = me.IntField(default=0)
    # Epoch ms of the last write that added events (the relays' sweep grace).
    outbox_ms = me.IntField()

    meta = {"abstract": True}
