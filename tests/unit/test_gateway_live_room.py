"""The live room's HTTP route (gateway/live_room.py) over an in-memory room source and a
stand-in for the content service's GetLiveRoom: who may watch (key and token as headers or
query parameters), what is refused before streaming (bad input 400, unknown session 404,
NATS away 503) and leaves no viewer behind, and the stream: a snapshot, then each event
named by its kind with its id, resumed after Last-Event-ID."""
from __future__ import annotations

import functools
import json
from types import SimpleNamespace

import pytest
from siyu.common.v1 import common_pb2
from siyu.content.v1 import content_pb2
from siyu.member.v1 import member_pb2
from sse_starlette import EventSourceResponse
from starlette.requests import Request

from gateway import live_room
from gateway.app import Gateway
from gateway.auth import ApiKeyResolver
from gateway.errors import ApiError
from gateway.live_hub import LiveHub
from siyu_kit import auth
from siyu_kit.ids import new_id
from tests.fakes.live_room import FakeSource

SECRET = "unit-test-secret-of-thirty-two-bytes!"
KEY = "key-h5"
MERCHANT, MEMBER = new_id("mch"), new_id("mem")
SESSION = new_id("liv")


async def resolve(api_key: str, request_id: str) -> member_pb2.ResolveApiKeyResponse:
    if api_key != KEY:
        return member_pb2.ResolveApiKeyResponse()
    return member_pb2.ResolveApiKeyResponse(merchant_id=MERCHANT, channel=common_pb2.CHANNEL_H5)


def member_token() -> str:
    return auth.issue(SECRET, auth.TokenClaims(kind="member", subject=MEMBER, merchant_id=MERCHANT), 600)


class Stream:
    """The route with its NATS and content service replaced by in-memory stand-ins."""

    def __init__(self, connected: bool = True, known: tuple[str, ...] = (SESSION,)):
        settings = SimpleNamespace(jwt_secret=SECRET, platform_token="", forwarded_hops=0, deadline_s=1)
        gateway = SimpleNamespace(resolver=ApiKeyResolver(resolve), versions=None, settings=settings,
                                  _rate_limit=lambda *a: None, credentials=Gateway.credentials)
        gateway.admit = functools.partial(Gateway.admit, gateway)  # the gateway's own check, on stand-ins
        self.live = live_room.LiveRoomStream(gateway, settings)
        self.source = FakeSource()
        self.live.source = self.source
        self.live.hub = LiveHub(self.source)
        self.rooms_asked: list[tuple[str, str]] = []

        async def is_connected() -> bool:
            return connected

        async def room(ctx, session_id):
            self.rooms_asked.append((ctx.merchant_id, ctx.caller_id))
            if session_id not in known:
                raise ApiError("NOT_FOUND", "no such live session", "LIVE_SESSION_NOT_FOUND")
            return content_pb2.GetLiveRoomResponse(live_prices_apply=True)
        self.source.connected = is_connected
        self.live._room = room

    async def get(self, session_id: str = SESSION, headers: dict | None = None, query: str = ""):
        if headers is None:
            headers = {"x-api-key": KEY, "authorization": f"Bearer {member_token()}"}
        scope = {"type": "http", "method": "GET", "path": f"/v1/live-sessions/{session_id}/events",
                 "path_params": {"live_session_id": session_id}, "query_string": query.encode(),
                 "headers": [(k.encode(), v.encode()) for k, v in headers.items()], "client": ("127.0.0.1", 1),
                 "state": {}}
        return await self.live.events(Request(scope))


def error_of(response) -> tuple[int, str]:
    return response.status_code, json.loads(response.body)["error"]["reason"]


def parsed(chunk) -> list[SimpleNamespace]:
    """What the stream yielded (the snapshot as a ServerSentEvent, room events as bytes
    already in the wire format, several per write in a burst) as events."""
    if not isinstance(chunk, bytes):
        return [SimpleNamespace(event=chunk.event, id=chunk.id, data=chunk.data)]
    found = []
    for block in chunk.decode().split("\r\n\r\n")[:-1]:
        fields = dict(line.split(": ", 1) for line in block.split("\r\n"))
        found.append(SimpleNamespace(event=fields["event"], id=fields["id"], data=fields["data"]))
    return found


async def events(response: EventSourceResponse, n: int) -> list:
    out = []
    async for chunk in response.body_iterator:
        out.extend(parsed(chunk))
        if len(out) >= n:
            break
    await response.body_iterator.aclose()
    return out


async def test_the_stream_starts_with_a_snapshot_then_events_by_kind_and_id():
    stream = Stream()
    response = await stream.get()
    assert isinstance(response, EventSourceResponse)
    assert stream.rooms_asked == [(MERCHANT, MEMBER)]  # GetLiveRoom with the caller's identity
    pinned = stream.source.publish(SESSION, "product_pinned")
    snapshot, first = await events(response, 2)
    assert snapshot.event == "snapshot" and json.loads(snapshot.data)["live_prices_apply"] is True
    assert snapshot.id is None  # nothing happened in the room yet: no id to resume from
    assert (first.event, first.id, first.data) == ("product_pinned", str(pinned.seq), pinned.data)
    assert stream.live.hub.rooms[SESSION].viewers == set()  # the closed stream left the room


async def test_a_snapshot_carries_the_id_a_reconnect_resumes_from_and_a_resume_gets_what_was_missed():
    stream = Stream()
    keep = await stream.live.hub.join(SESSION)  # someone watching: the room keeps its ring
    sent = [stream.source.publish(SESSION, kind) for kind in ("product_pinned", "flash_sale_started", "stock_left")]
    snapshot, = await events(await stream.get(), 1)
    assert snapshot.id == str(sent[-1].seq)
    resumed = await stream.get(headers={"x-api-key": KEY, "authorization": f"Bearer {member_token()}",
                                        "last-event-id": str(sent[0].seq)})
    got = await events(resumed, 3)
    assert [(e.event, e.id) for e in got] == [("snapshot", None)] + [(e.kind, str(e.seq)) for e in sent[1:]]
    by_query = await events(await stream.get(query=f"api_key={KEY}&access_token={member_token()}"
                                             f"&last_event_id={sent[1].seq}"), 2)
    assert [e.id for e in by_query] == [None, str(sent[2].seq)]
    stream.live.hub.leave(keep)


async def test_a_presence_report_counts_only_admitted_viewers():
    stream = Stream()
    response = await stream.get()
    assert stream.live.hub.presence() == [(SESSION, MERCHANT, 1, [MEMBER])]
    await events(response, 1)


@pytest.mark.parametrize("headers, query, status, reason", [
    ({}, "", 401, "API_KEY_MISSING"),
    ({"x-api-key": KEY}, "", 401, "TOKEN_MISSING"),
    ({"x-api-key": "wrong", "authorization": "Bearer x"}, "", 401, "API_KEY_INVALID"),
    ({}, "api_key=wrong", 401, "API_KEY_INVALID"),
    (None, "last_event_id=abc", 400, "INVALID_FIELDS"),
    (None, "last_event_id=-1", 400, "INVALID_FIELDS"),
    (None, "since=1", 400, "INVALID_FIELDS"),
])
async def test_bad_credentials_or_input_are_refused_before_anything_is_joined(headers, query, status, reason):
    stream = Stream()
    assert error_of(await stream.get(headers=headers, query=query)) == (status, reason)
    assert stream.live.hub.rooms == {} and stream.rooms_asked == []


async def test_a_bad_session_id_is_refused_and_an_unknown_one_is_not_found_and_leaves_no_viewer():
    stream = Stream()
    assert error_of(await stream.get("liv_nope")) == (400, "INVALID_FIELDS")
    other = new_id("liv")
    assert error_of(await stream.get(other)) == (404, "LIVE_SESSION_NOT_FOUND")
    assert stream.live.hub.rooms[other].viewers == set()  # lingers, then unsubscribes


async def test_without_nats_the_stream_is_unavailable_and_nothing_else_is_touched():
    stream = Stream(connected=False)
    response = await stream.get()
    assert error_of(response) == (503, "EVENTS_UNAVAILABLE") and response.headers["retry-after"]
    assert stream.live.hub.rooms == {} and stream.rooms_asked == []


def test_the_served_openapi_document_lists_the_route_with_its_parameters_and_event_stream():
    from gateway.app import Gateway
    from siyu_kit.config import GatewaySettings

    operation = Gateway(GatewaySettings.load()).openapi_doc["paths"][live_room.PATH]["get"]
    assert {(p["name"], p["in"]) for p in operation["parameters"]} == {
        ("live_session_id", "path"), ("Last-Event-ID", "header"), ("last_event_id", "query"),
        ("api_key", "query"), ("access_token", "query")}
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert operation["x-siyu-access"] == "MEMBER" and "404" in operation["responses"]
