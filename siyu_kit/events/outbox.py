"""Building events and the update fragments that put them in an aggregate's outbox."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from google.protobuf import any_pb2, timestamp_pb2
from google.protobuf.message import Message
from siyu.common.v1 import common_pb2

from siyu_kit import context
from siyu_kit.events.subjects import subject_of
from siyu_kit.ids import new_id

# Document fields the outbox uses. `outbox_pending` is 0/1 (an int, portable across
# stores), `outbox_seq` counts writes that added events so the relay can tell whether
# more arrived while it was publishing.
OUTBOX = "outbox"
PENDING = "outbox_pending"
SEQ = "outbox_seq"
# Epoch ms of the last write that added events: the relays' sweep takes only documents
# pending for its grace or longer (the replica that wrote them publishes them first).
SINCE = "outbox_ms"

_CHANNEL_NUMBERS = {"MINI_PROGRAM": 1, "H5": 2, "LIVE": 3}


@dataclass(frozen=True)
class Event:
    event_id: str
    subject: str
    data: bytes  # serialized EventEnvelope

    def as_doc(self) -> dict:
        return {"subject": self.subject, "data": self.data}


def make_event(subject: str, *, merchant_id: str, aggregate_id: str, aggregate_version: int,
               payload: Message, channel: str = "", occurred_at: datetime | None = None) -> Event:
    ctx = context.current()
    event_id = new_id("evt")
    when = timestamp_pb2.Timestamp()
    when.FromDatetime(occurred_at or datetime.now(timezone.utc))
    packed = any_pb2.Any()
    packed.Pack(payload)
    envelope = common_pb2.EventEnvelope(
        event_id=event_id, type=subject, occurred_at=when, merchant_id=merchant_id,
        aggregate_id=aggregate_id, aggregate_version=aggregate_version,
        correlation_id=ctx.request_id, channel=_CHANNEL_NUMBERS.get(channel or ctx.channel, 0),
        payload=packed,
    )
    return Event(event_id, subject, envelope.SerializeToString())


def event_for(payload: Message, *, merchant_id: str, aggregate_id: str, aggregate_version: int, verb: str = "",
              channel: str = "", occurred_at: datetime | None = None) -> Event:
    """An event on the subject its message type declares (`verb` picks one of several)."""
    return make_event(subject_of(type(payload), verb), merchant_id=merchant_id, aggregate_id=aggregate_id,
                      aggregate_version=aggregate_version, payload=payload, channel=channel, occurred_at=occurred_at)


def room_event_for(payload: Message, *, merchant_id: str, aggregate_id: str, aggregate_version: int,
                   occurred_at: datetime | None = None) -> Event:
    """A live-room event (siyu.common.v1.LiveRoomEvent) on its session's own subject,
    `siyu.live.room.<live_session_id>`: a gateway follows one room without the others."""
    return make_event(f"{subject_of(type(payload))}.{payload.live_session_id}", merchant_id=merchant_id,
                      aggregate_id=aggregate_id, aggregate_version=aggregate_version, payload=payload,
                      occurred_at=occurred_at)


# Who wants to know that events were just committed: the process's relay, so that it
# publishes them now instead of leaving them to the sweep. Repositories call
# `committed(collection, document id, event ids)` after a write that stored events;
# nothing is threaded through the use cases.
_on_commit: list[Callable[[Any, Any, Sequence[str] | None], None]] = []


def on_commit(callback: Callable[[Any, Any, Sequence[str] | None], None]) -> Callable[[], None]:
    """Registers `callback(collection, document id, event ids)`; returns what unregisters it."""
    _on_commit.append(callback)
    return lambda: _on_commit.remove(callback) if callback in _on_commit else None


def committed(collection: Any = None, doc_id: Any = None, event_ids: Sequence[str] | None = None) -> None:
    """These events were committed in this document (no ids: whatever it holds; nothing
    named: somewhere, look for them). A replica publishes only the events it committed, so
    two replicas writing one document do not both publish each other's."""
    for callback in list(_on_commit):
        callback(collection, doc_id, event_ids)


def _now_ms() -> int:
    return int(time.time() * 1000)


def for_insert(*events: Event) -> dict:
    """Fields to put into a new document so it is born with these events pending."""
    fields = {OUTBOX: {e.event_id: e.as_doc() for e in events}, PENDING: 1 if events else 0,
              SEQ: 1 if events else 0}
    if events:
        fields[SINCE] = _now_ms()
    return fields


def add_to_update(update: dict, *events: Event) -> dict:
    """Merge these events into a MongoDB update document ($set / $inc)."""
    if not events:
        return update
    sets = update.setdefault("$set", {})
    for e in events:
        sets[f"{OUTBOX}.{e.event_id}"] = e.as_doc()
    sets[PENDING] = 1
    sets[SINCE] = _now_ms()
    update.setdefault("$inc", {})[SEQ] = 1
    return update


def decode(data: bytes) -> common_pb2.EventEnvelope:
    envelope = common_pb2.EventEnvelope()
    envelope.ParseFromString(data)
    return envelope
