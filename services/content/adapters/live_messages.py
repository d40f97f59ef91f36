"""Live sessions as protobuf messages: the LiveSession of responses, and the room events
(siyu.common.v1.LiveRoomEvent on `siyu.live.room.<live_session_id>`) their changes cause."""
from __future__ import annotations

from siyu.common.v1 import common_pb2, live_pb2
from siyu.content.v1 import content_pb2

from siyu_kit import protos
from siyu_kit.events.outbox import Event, room_event_for

from services.content.application.clock import from_ms
from services.content.application.live_viewer_ports import ViewerFigures
from services.content.domain import live_sessions as rules
from services.content.domain.live_sessions import LineUpChanged, LineUpItem, LiveSession, ProductPinned, StateChanged

STATE_NUMBER = {rules.SCHEDULED: live_pb2.LIVE_SESSION_STATE_SCHEDULED, rules.LIVE: live_pb2.LIVE_SESSION_STATE_LIVE,
                rules.ENDED: live_pb2.LIVE_SESSION_STATE_ENDED, rules.CANCELLED: live_pb2.LIVE_SESSION_STATE_CANCELLED}
STATE_BY_NUMBER = {v: k for k, v in STATE_NUMBER.items()}


def state_name(number: int) -> str:
    """"" for unspecified; a number the contract does not know stays invalid."""
    return "" if number == 0 else STATE_BY_NUMBER.get(number, f"#{number}")


def line_up_item_pb(item: LineUpItem) -> content_pb2.LiveLineUpItem:
    return content_pb2.LiveLineUpItem(sku_id=item.sku_id, product_id=item.product_id,
                                      live_price=common_pb2.Money(amount=item.live_price, currency=item.currency))


def line_up_of(items) -> tuple[LineUpItem, ...]:
    """The request's line-up (the product is the catalog's, filled in later)."""
    return tuple(LineUpItem(sku_id=i.sku_id, live_price=i.live_price.amount, currency=i.live_price.currency or "CNY")
                 for i in items)


NO_FIGURES = ViewerFigures()


def session_pb(session: LiveSession, figures: ViewerFigures = NO_FIGURES) -> content_pb2.LiveSession:
    f = session.fields
    message = content_pb2.LiveSession(
        live_session_id=session.id, persona_id=f.persona_id, title=f.title, cover_url=f.cover_url,
        state=STATE_NUMBER[session.state], scheduled_at=protos.timestamp(from_ms(f.scheduled_ms)),
        line_up=[line_up_item_pb(i) for i in f.line_up], pinned_sku_id=session.pinned_sku_id,
        price_grace_minutes=f.price_grace_minutes, likes=session.likes, version=session.version,
        created_at=protos.timestamp(from_ms(session.created_ms)), unique_viewers=figures.unique,
        concurrent_viewers=figures.concurrent, peak_concurrent_viewers=figures.peak)
    if session.started_ms:
        message.started_at.CopyFrom(protos.timestamp(from_ms(session.started_ms)))
    if session.ended_ms:
        message.ended_at.CopyFrom(protos.timestamp(from_ms(session.ended_ms)))
    return message


def room_event(merchant_id: str, session_id: str, version: int, at_ms: int, **kind) -> Event:
    """One LiveRoomEvent on the session's own subject; `kind` is the oneof member."""
    at = from_ms(at_ms)
    payload = live_pb2.LiveRoomEvent(live_session_id=session_id, at=protos.timestamp(at), **kind)
    return room_event_for(payload, merchant_id=merchant_id, aggregate_id=session_id, aggregate_version=version,
                          occurred_at=at)


def session_events(session: LiveSession, version: int) -> list[Event]:
    """The room events of the changes the session recorded; `version` is the one the write
    stores."""
    events = []
    for recorded in session.pull_events():
        if isinstance(recorded, StateChanged):
            kind = {"state_changed": live_pb2.LiveStateChanged(state=STATE_NUMBER[recorded.state])}
        elif isinstance(recorded, ProductPinned):
            kind = {"product_pinned": live_pb2.LiveProductPinned(product_id=recorded.product_id,
                                                                 sku_id=recorded.sku_id)}
        elif isinstance(recorded, LineUpChanged):
            kind = {"line_up_changed": live_pb2.LiveLineUpChanged(version=version)}
        else:
            continue
        events.append(room_event(session.merchant_id, session.id, version, recorded.at_ms, **kind))
    return events


def likes_event(merchant_id: str, session_id: str, version: int, likes: int, at_ms: int) -> Event:
    return room_event(merchant_id, session_id, version, at_ms, likes_changed=live_pb2.LiveLikesChanged(likes=likes))
