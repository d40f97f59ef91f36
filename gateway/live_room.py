"""`GET /v1/live-sessions/{live_session_id}/events`: a live room as server-sent events.

The caller authenticates as on any member route; because a browser's EventSource cannot
set headers, the channel key and the member token may also come as the query parameters
`api_key` and `access_token` (and `Last-Event-ID` as `last_event_id`). The content
service's GetLiveRoom, called with the caller's identity, decides whether the session is
the merchant's (404 otherwise) and gives the first event, `snapshot`; the room's events
follow, each with its stream sequence as id, and a comment line every heartbeat.
"""
from __future__ import annotations

import asyncio
import json
import math

import grpc
from google.protobuf import json_format
from siyu.content.v1 import content_pb2
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from siyu_kit import access, config, logging as slog
from siyu_kit.config import env_count, env_seconds
from siyu_kit.context import RequestContext
from siyu_kit.errors import FieldViolation
from siyu_kit.ids import is_id, new_id

from gateway import errors
from gateway.errors import ApiError
from gateway.live_hub import LiveHub, report_presence
from gateway.live_source import JetStreamRooms

log = slog.get("siyu.gateway.live")

PATH = "/v1/live-sessions/{live_session_id}/events"
LABEL = f"GET {PATH}"
QUERY_PARAMETERS = ("api_key", "access_token", "last_event_id")
GET_LIVE_ROOM = "/siyu.content.v1.ContentService/GetLiveRoom"
REPORT_LIVE_VIEWERS = "/siyu.content.v1.ContentService/ReportLiveViewers"
MAX_JOINED_PER_REPORT = 5000
SEND_TIMEOUT_S = 30.0
RULE = access.Rule("MEMBER")


def _invalid(field: str, description: str) -> ApiError:
    return ApiError("INVALID_ARGUMENT", "the request has invalid fields", "INVALID_FIELDS",
                    [FieldViolation(field, description)])


def last_event_id_of(request: Request) -> int | None:
    raw = request.headers.get("last-event-id")
    field = "Last-Event-ID"
    if raw is None:
        raw, field = request.query_params.get("last_event_id"), "last_event_id"
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        raise _invalid(field, "must be the id of an event of this stream")
    return int(raw)


class LiveRoomStream:
    def __init__(self, gateway, settings):
        self.gateway = gateway
        self.settings = settings
        self.source = JetStreamRooms(config.load("gateway").nats_url)
        self.hub = LiveHub(self.source, queue_size=env_count("GATEWAY_LIVE_QUEUE", 256),
                           ring_size=env_count("GATEWAY_LIVE_RING", 512),
                           linger_s=env_seconds("GATEWAY_LIVE_LINGER_S", 10))
        self.heartbeat_s = env_seconds("GATEWAY_LIVE_HEARTBEAT_S", 15)
        self.report_s = env_seconds("GATEWAY_LIVE_REPORT_S", 5)
        self.gateway_id = new_id("gtw")
        self._stop = asyncio.Event()
        self._reporter: asyncio.Task | None = None

    # ---- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        self._reporter = asyncio.get_running_loop().create_task(report_presence(
            self.hub, self.report, self.report_s, self._stop,
            on_error=lambda error: log.warning("live.report_failed", error=repr(error))))

    async def close(self) -> None:
        self._stop.set()
        if self._reporter is not None:
            await asyncio.gather(self._reporter, return_exceptions=True)
        await self.hub.close()
        await self.source.close()

    # ---- presence ---------------------------------------------------------------------
    async def report(self, live_session_id: str, merchant_id: str, count: int, joined: list[str]) -> None:
        """ReportLiveViewers for this process, as the gateway (the RPC is internal): the
        merchant found to own the session, the viewers here, a lease of three reports."""
        call = self.gateway.channel("content").unary_unary(
            REPORT_LIVE_VIEWERS, request_serializer=content_pb2.ReportLiveViewersRequest.SerializeToString,
            response_deserializer=content_pb2.ReportLiveViewersResponse.FromString)
        md = RequestContext(request_id=new_id("req"), merchant_id=merchant_id).to_metadata(calling_service="gateway")
        lease = min(300, max(1, math.ceil(3 * self.report_s)))
        chunks = [joined[i:i + MAX_JOINED_PER_REPORT] for i in range(0, len(joined), MAX_JOINED_PER_REPORT)] or [[]]
        for chunk in chunks:
            await call(content_pb2.ReportLiveViewersRequest(
                live_session_id=live_session_id, gateway_id=self.gateway_id, concurrent=count,
                joined_member_ids=chunk, lease_seconds=lease), metadata=md, timeout=self.settings.deadline_s)

    # ---- the route --------------------------------------------------------------------
    async def _identify(self, request: Request, request_id: str) -> RequestContext:
        query = request.query_params
        unknown = [name for name in query if name not in QUERY_PARAMETERS]
        if unknown:
            raise _invalid(unknown[0], "no such parameter")
        return await self.gateway.admit(RULE, self.gateway.credentials(request, self.settings.forwarded_hops,
                                                                        query_too=True), request_id)

    async def _room(self, ctx: RequestContext, live_session_id: str) -> content_pb2.GetLiveRoomResponse:
        call = self.gateway.channel("content").unary_unary(
            GET_LIVE_ROOM, request_serializer=content_pb2.GetLiveRoomRequest.SerializeToString,
            response_deserializer=content_pb2.GetLiveRoomResponse.FromString)
        try:
            return await call(content_pb2.GetLiveRoomRequest(live_session_id=live_session_id),
                              metadata=ctx.to_metadata(), timeout=self.settings.deadline_s)
        except grpc.aio.AioRpcError as error:
            raise errors.from_rpc_error(error) from None

    async def events(self, request: Request) -> Response:
        state = request.scope.setdefault("state", {})
        request_id = state.get("request_id") or new_id("req")
        state["route"] = LABEL
        live_session_id = request.path_params["live_session_id"]
        viewer = None
        try:
            ctx = await self._identify(request, request_id)
            state["merchant_id"], state["channel"] = ctx.merchant_id, ctx.channel
            if not is_id(live_session_id, "liv"):
                raise _invalid("live_session_id", "must be a liv_ id")
            last_event_id = last_event_id_of(request)
            if not await self.source.connected():
                raise ApiError("UNAVAILABLE", "the live room's events are not available now; retry shortly",
                               "EVENTS_UNAVAILABLE")
            try:
                # Registered first: whatever happens from here on reaches this viewer.
                viewer = await self.hub.join(live_session_id, ctx.caller_id, last_event_id)
            except Exception as error:  # noqa: BLE001 - NATS refused: the stream is unavailable
                log.warning("live.join_failed", request_id=request_id, error=repr(error))
                raise ApiError("UNAVAILABLE", "the live room's events are not available now; retry shortly",
                               "EVENTS_UNAVAILABLE") from None
            room = await self._room(ctx, live_session_id)
            self.hub.admit(viewer, ctx.merchant_id)
        except ApiError as error:
            if viewer is not None:
                self.hub.leave(viewer)
            return errors.response(error, request_id)
        except Exception:  # noqa: BLE001 - the caller gets a plain 500, the log gets the trace
            if viewer is not None:
                self.hub.leave(viewer)
            log.exception("gateway.failed", request_id=request_id, route=LABEL)
            return errors.response(ApiError("INTERNAL", "internal error"), request_id)
        snapshot = json.dumps(json_format.MessageToDict(room, preserving_proto_field_name=True,
                                                        always_print_fields_with_no_presence=True),
                              ensure_ascii=False, separators=(",", ":"))
        # Without Last-Event-ID the snapshot stands for everything up to now: its id is
        # where a reconnect resumes. With one, the snapshot leaves the client's id alone.
        snapshot_id = str(viewer.sent_seq) if last_event_id is None and viewer.sent_seq else None
        hub = self.hub

        async def stream():
            try:
                yield ServerSentEvent(data=snapshot, event="snapshot", id=snapshot_id)
                while True:
                    events = await viewer.batch()
                    if events is None:
                        return  # fell behind: the client reconnects with its last id
                    yield b"".join(event.wire for event in events)
            finally:
                hub.leave(viewer)

        # A client that stops reading is dropped by the hub; a write it never takes ends after SEND_TIMEOUT_S.
        return EventSourceResponse(stream(), ping=self.heartbeat_s, send_timeout=SEND_TIMEOUT_S,
                                   headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


_ID = {"type": "string", "pattern": "^[0-9]{1,19}$"}
OPENAPI_OPERATION = {
    "operationId": "LiveRoom_Events",
    "summary": "A live room's events, as server-sent events",
    "tags": ["ContentService"],
    "x-siyu-access": "MEMBER",
    "security": [{"apiKey": [], "bearer": []}, {}],
    "x-siyu-reasons": ["INVALID_FIELDS", "API_KEY_MISSING", "API_KEY_INVALID", "TOKEN_MISSING", "TOKEN_INVALID",
                       "TOKEN_EXPIRED", "TOKEN_MERCHANT", "TOKEN_REVOKED", "RATE_LIMITED", "EVENTS_UNAVAILABLE",
                       "LIVE_SESSION_NOT_FOUND"],
    "description": (
        "The room as it happens: first `snapshot` (the GetLiveRoom answer), then one event per thing that "
        "happens, named by its kind (state_changed, viewers_changed, product_pinned, flash_sale_started, "
        "stock_left, someone_bought, likes_changed, line_up_changed) with the LiveRoomEvent as JSON, and a "
        "comment line as heartbeat. Each event's `id` is its place in the room's stream: reconnect with "
        "`Last-Event-ID` (or `last_event_id`) to get everything after it that is still kept (a day; at most "
        "1,000 events further back than the gateway's recent ones) and continue without gap or duplicate. A "
        "client that reads too slowly is disconnected and resumes the same way. A browser's EventSource "
        "cannot set headers: the channel key and member token may come as `api_key` and `access_token`. "
        "404 for a session of another merchant; 503 while event delivery is unavailable."),
    "parameters": [
        {"name": "live_session_id", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^liv_[0-9A-HJKMNP-TV-Z]{26}$"}},
        {"name": "Last-Event-ID", "in": "header", "required": False, "schema": _ID,
         "description": "the id of the last event received: resume after it"},
        {"name": "last_event_id", "in": "query", "required": False, "schema": _ID,
         "description": "Last-Event-ID for clients that cannot set it"},
        {"name": "api_key", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "the channel API key, for clients that cannot set X-Api-Key"},
        {"name": "access_token", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "the member access token, for clients that cannot set Authorization"},
    ],
    "responses": {
        "200": {"description": "The event stream (it stays open).",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **{status: {"$ref": f"#/components/responses/Error{status}"}
           for status in ("400", "401", "404", "429", "503", "504")},
        "default": {"$ref": "#/components/responses/ErrorDefault"},
    },
}
