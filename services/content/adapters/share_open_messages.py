"""ShareCodeOpened as the outbox event of a share code's open record."""
from __future__ import annotations

from siyu.content.v1 import events_pb2

from siyu_kit import protos
from siyu_kit.events.outbox import Event, event_for

from services.content.application.clock import from_ms
from services.content.domain.share_opens import ShareCodeWasOpened


def opened_events(merchant_id: str, opened: ShareCodeWasOpened | None) -> list[Event]:
    if opened is None:
        return []
    payload = events_pb2.ShareCodeOpened(code=opened.code, sharer_id=opened.sharer_id, member_id=opened.member_id,
                                         at=protos.timestamp(from_ms(opened.at_ms)))
    # One open record per open: the code is the aggregate, and each record is born once.
    return [event_for(payload, merchant_id=merchant_id, aggregate_id=opened.code, aggregate_version=1,
                      occurred_at=from_ms(opened.at_ms))]
