"""Personas and content as protobuf messages, for responses and for events."""
from __future__ import annotations

from siyu.common.v1 import common_pb2
from siyu.content.v1 import content_pb2, events_pb2

from siyu_kit import protos
from siyu_kit.events.outbox import Event, event_for

from services.content.application.clock import from_ms
from services.content.domain.contents import Content, ContentWasPublished
from services.content.domain.personas import Persona

TYPE_NUMBER = {"ARTICLE": content_pb2.CONTENT_TYPE_ARTICLE, "SHORT_POST": content_pb2.CONTENT_TYPE_SHORT_POST,
               "VIDEO": content_pb2.CONTENT_TYPE_VIDEO}
STATUS_NUMBER = {"DRAFT": content_pb2.CONTENT_STATUS_DRAFT, "SCHEDULED": content_pb2.CONTENT_STATUS_SCHEDULED,
                 "PUBLISHED": content_pb2.CONTENT_STATUS_PUBLISHED, "ARCHIVED": content_pb2.CONTENT_STATUS_ARCHIVED}
CHANNEL_NUMBER = {"MINI_PROGRAM": common_pb2.CHANNEL_MINI_PROGRAM, "H5": common_pb2.CHANNEL_H5,
                  "LIVE": common_pb2.CHANNEL_LIVE}
CHANNEL_BY_NUMBER = {v: k for k, v in CHANNEL_NUMBER.items()}


def persona_proto(p: Persona) -> content_pb2.Persona:
    f = p.fields
    return content_pb2.Persona(persona_id=p.id, code=f.code, name=f.name, avatar_url=f.avatar_url,
                               expertise=f.expertise, bio=f.bio, tone=f.tone, guide_ids=list(p.guide_ids),
                               follower_count=p.follower_count, featured_product_ids=list(f.featured_product_ids))


def content_proto(c: Content) -> content_pb2.Content:
    f = c.fields
    message = content_pb2.Content(content_id=c.id, code=f.code, persona_id=f.persona_id,
                                  type=TYPE_NUMBER[f.type], title=f.title, body=f.body,
                                  product_ids=list(f.product_ids), status=STATUS_NUMBER[c.status],
                                  media_urls=list(f.media_urls), topics=list(f.topics),
                                  channels=[CHANNEL_NUMBER[ch] for ch in f.channels])
    if c.published_at_ms:
        message.published_at.CopyFrom(protos.timestamp(from_ms(c.published_at_ms)))
    if f.publish_at_ms:
        message.publish_at.CopyFrom(protos.timestamp(from_ms(f.publish_at_ms)))
    return message


def content_events(content: Content, version: int) -> list[Event]:
    """The outbox events of the changes the content recorded; `version` is the one the
    write stores.""" 
    events = []
    for recorded in content.pull_events():
        if isinstance(recorded, ContentWasPublished):
            events.append(event_for(events_pb2.ContentPublished(content=content_proto(content)),
                                    merchant_id=content.merchant_id, aggregate_id=content.id,
                                    aggregate_version=version))
    return events


def follow_event(followed: bool, merchant_id: str, member_id: str, persona_id: str, now_ms: int,
                 version: int) -> Event:
    at = protos.timestamp(from_ms(now_ms))
    payload = (events_pb2.PersonaFollowed(persona_id=persona_id, member_id=member_id, at=at) if followed
               else events_pb2.PersonaUnfollowed(persona_id=persona_id, member_id=member_id, at=at))
    return event_for(payload, merchant_id=merchant_id, aggregate_id=persona_id, aggregate_version=version)
