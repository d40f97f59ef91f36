"""The gateway process: Starlette app, transcoding dispatcher, health, OpenAPI and docs.

JSON ⇄ proto uses the standard proto3 JSON mapping (google.protobuf.json_format) with proto
field names: int64 as strings, enums by name, Timestamps RFC 3339; responses print fields
without presence even at their default, so a front end always sees every field. Input is
read strictly first (`gateway.strict`): size, nesting, and every value against its field.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
import time

import grpc
import uvicorn
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route as HttpRoute

from siyu_kit import auth as tokens, config, delays, logging as slog, metrics, profiling, trust
from siyu_kit.config import load as load_settings
from siyu_kit.config import SERVICE_NAMES, GatewaySettings
from siyu_kit.errors import FieldViolation
from siyu_kit.ids import new_id
from siyu.member.v1 import member_pb2
from siyu_kit.context import RequestContext

from gateway import errors, http_body, live_room, openapi, overload, product_detail, strict, wechat_notify
from gateway.auth import ApiKeyResolver, Credentials, TokenVersions, bearer_token, identify
from gateway.errors import ApiError
from gateway.ratelimit import limiter, retry_after_header
from gateway.routes import FieldError, Route, Table, parse_error_field, query_to_dict, set_path
from gateway.server import JsonErrorH11Protocol

log = slog.get("siyu.gateway")

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_REQUEST_ID_CHARS = re.compile(r"[^A-Za-z0-9._:-]")
JWKS_PATH = "/.well-known/jwks.json"
OPS_PATHS = ("/healthz", "/readyz", "/healthz/deps", "/openapi.json", "/docs", JWKS_PATH)
RESOLVE_API_KEY = "/siyu.member.v1.MemberService/ResolveApiKey"
GET_TOKEN_VERSIONS = "/siyu.member.v1.MemberService/GetTokenVersions"


def request_id_from(header: str | None) -> str:
    """Honours the caller's X-Request-Id when it survives sanitising, else makes one."""
    cleaned = _REQUEST_ID_CHARS.sub("", header or "")[:64]
    return cleaned or new_id("req")


def client_address(request: Request, forwarded_hops: int) -> str:
    """The caller's address: the peer's, or, behind `forwarded_hops` trusted proxies, the
    address the outermost of them saw (X-Forwarded-For is only as honest as its writer)."""
    if forwarded_hops > 0:
        hops = [h.strip() for h in (request.headers.get("x-forwarded-for") or "").split(",") if h.strip()]
        if len(hops) >= forwarded_hops:
            return hops[-forwarded_hops][:64]
    return request.client.host if request.client else ""


class Gateway:
    def __init__(self, settings: GatewaySettings, table: Table | None = None):
        self.settings = settings
        self.table = table or Table.from_protos()
        self.channels: dict[str, overload.ChannelPool] = {}
        self.channel_count = overload.channels_per_service()
        self.resolver = ApiKeyResolver(self._resolve_api_key,
                                       lookup_limiter=limiter(settings.key_lookup_rps, "key-lookup"))
        self.versions = TokenVersions(self._token_versions, ttl_s=settings.token_version_ttl_s)
        self.key_limiter = limiter(settings.key_rps, "key")
        self.member_limiter = limiter(settings.member_rps, "member")
        self.staff_limiter = limiter(settings.staff_rps, "staff")
        self.openapi_doc = openapi.document(self.table)
        self.openapi_doc["paths"][wechat_notify.PATH] = {"post": wechat_notify.OPENAPI_OPERATION}
        self.openapi_doc["paths"][live_room.PATH] = {"get": live_room.OPENAPI_OPERATION}
        self.docs_html = openapi.docs_page(self.openapi_doc)
        self._calls: dict[tuple[str, int], grpc.aio.UnaryUnaryMultiCallable] = {}

    # ---- backends -------------------------------------------------------------------
    def _pool(self, backend: str) -> overload.ChannelPool:
        pool = self.channels.get(backend)
        if pool is None:
            pool = self.channels[backend] = overload.ChannelPool(self.settings.service_addrs[backend],
                                                                 self.channel_count)
        return pool

    def channel(self, backend: str) -> grpc.aio.Channel:
        """One of the backend's channels, in turn."""
        return self._pool(backend).next()

    def _callable(self, route: Route) -> grpc.aio.UnaryUnaryMultiCallable:
        pool = self._pool(route.backend)
        index = pool.next_index()
        call = self._calls.get((route.grpc_path, index))
        if call is None:
            call = self._calls[(route.grpc_path, index)] = pool.channels[index].unary_unary(
                route.grpc_path, request_serializer=route.request_class.SerializeToString,
                response_deserializer=route.response_class.FromString)
        return call

    async def _resolve_api_key(self, api_key: str, request_id: str) -> member_pb2.ResolveApiKeyResponse:
        call = self.channel("member").unary_unary(
            RESOLVE_API_KEY, request_serializer=member_pb2.ResolveApiKeyRequest.SerializeToString,
            response_deserializer=member_pb2.ResolveApiKeyResponse.FromString)
        md = RequestContext(request_id=request_id, calling_service="gateway").to_metadata()
        return await call(member_pb2.ResolveApiKeyRequest(api_key=api_key), metadata=md,
                          timeout=self.settings.deadline_s)

    async def _token_versions(self, subjects: list[tuple[str, str]], request_id: str) -> list[tuple[int, bool]]:
        call = self.channel("member").unary_unary(
            GET_TOKEN_VERSIONS, request_serializer=member_pb2.GetTokenVersionsRequest.SerializeToString,
            response_deserializer=member_pb2.GetTokenVersionsResponse.FromString)
        md = RequestContext(request_id=request_id, calling_service="gateway").to_metadata()
        request = member_pb2.GetTokenVersionsRequest(subjects=[
            member_pb2.TokenSubject(merchant_id=m, subject_id=s) for m, s in subjects])
        reply = await call(request, metadata=md, timeout=self.settings.deadline_s)
        return [(int(v.version), bool(v.active)) for v in reply.versions]

    def jwks(self) -> dict:
        """The public keys that verify member and staff tokens, for anyone verifying them."""
        keys = tokens.keys_from_env(self.settings.jwt_secret)
        return keys.jwks() if isinstance(keys, tokens.TokenKeys) else {"keys": []}

    async def close(self) -> None:
        for pool in self.channels.values():
            await pool.close()
        self.channels.clear()
        self._calls.clear()

    # ---- transcoding ----------------------------------------------------------------
    async def build_request(self, route: Route, request: Request, path_values: dict[str, str]):
        data: dict = {}
        if route.body:
            raw = await read_body(request)
            if not raw.strip():
                raise ApiError("INVALID_ARGUMENT", "this route needs a JSON body; send {} when there is nothing to set",
                               "BODY_REQUIRED", [FieldViolation("body", "is required")])
            payload = strict.load_body(raw)
            if route.body == "*":
                if not isinstance(payload, dict):
                    raise ApiError("INVALID_ARGUMENT", "the body must be a JSON object", "MALFORMED_JSON",
                                   [FieldViolation("body", "must be a JSON object")])
                data = payload
            else:
                data = {route.body: payload}
        params = list(request.query_params.multi_items())
        try:
            if params and route.body == "*":
                raise FieldError(params[0][0], "query parameters are not accepted here; send fields in the body")
            skip = set(route.template.variables) | ({route.body} if route.body else set())
            for key, value in query_to_dict(route.method_descriptor.input_type, params, skip).items():
                data[key] = value
            for name, value in path_values.items():
                set_path(data, name, value)
        except FieldError as error:
            raise ApiError("INVALID_ARGUMENT", "the request has invalid fields", "INVALID_FIELDS",
                           [FieldViolation(error.field, error.description)]) from None
        # Every value is checked strictly first, so json_format only converts known-good input.
        data, violations = strict.check_message(route.method_descriptor.input_type, data)
        if violations:
            raise ApiError("INVALID_ARGUMENT", "the request has invalid fields", "INVALID_FIELDS", violations)
        message = route.request_class()
        try:
            json_format.ParseDict(data, message, ignore_unknown_fields=False)
        except Exception as error:  # noqa: BLE001 - any conversion failure is still bad input
            # json_format's own wording names Python internals; only the field is kept.
            field = parse_error_field(str(error))[0] if isinstance(error, json_format.ParseError) else "body"
            raise ApiError("INVALID_ARGUMENT", "the request has invalid fields", "INVALID_FIELDS",
                           [FieldViolation(field, "has an invalid value")]) from None
        return message

    @staticmethod
    def credentials(request: Request, forwarded_hops: int, query_too: bool = False) -> Credentials:
        """The channel key and bearer token of a request; with `query_too` also from the
        `api_key` and `access_token` query parameters (a browser's EventSource sends no
        headers of its own)."""
        query = request.query_params if query_too else {}
        return Credentials(
            api_key=(request.headers.get("x-api-key") or query.get("api_key") or "").strip(),
            bearer=bearer_token(request.headers.get("authorization")) or (query.get("access_token") or "").strip(),
            address=client_address(request, forwarded_hops))

    async def admit(self, rule, creds: Credentials, request_id: str) -> RequestContext:
        """Who calls (401/403 when the route's access rule refuses them), within their rate
        limits (429): the check every route runs before it asks a service."""
        ctx = await identify(rule, creds, request_id, self.resolver, tokens.keys_from_env(self.settings.jwt_secret),
                             self.versions, self.settings.platform_token)
        self._rate_limit(rule, creds, ctx)
        return ctx

    def _rate_limit(self, rule, creds: Credentials, ctx: RequestContext) -> None:
        wait = 0.0
        if rule.access in ("CHANNEL", "MEMBER"):
            wait = self.key_limiter.take(f"{ctx.merchant_id}:{creds.api_key}")
        if not wait and ctx.caller_kind == "member":
            wait = self.member_limiter.take(f"{ctx.merchant_id}:{ctx.caller_id}")
        if not wait and ctx.caller_kind == "staff":
            wait = self.staff_limiter.take(f"{ctx.merchant_id}:{ctx.caller_id}")
        if wait:
            raise ApiError("RESOURCE_EXHAUSTED", "too many requests; retry later", "RATE_LIMITED",
                           headers={"Retry-After": retry_after_header(wait)})

    async def dispatch(self, request: Request) -> Response:
        state = request.scope.setdefault("state", {})
        request_id = state.get("request_id") or request_id_from(request.headers.get("x-request-id"))
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        route, values, known = self.table.match(request.method, raw_path.decode("latin-1"))
        if route is None:
            if raw_path.decode("latin-1") in OPS_PATHS:
                return _method_not_allowed("GET", request_id)
            if known:
                allowed = ", ".join(self.table.allowed_methods(raw_path.decode("latin-1")))
                return _method_not_allowed(allowed, request_id)
            return errors.response(ApiError("NOT_FOUND", "no such route", "ROUTE_NOT_FOUND"), request_id)
        state["route"] = route.label
        # One deadline for the whole request: the service call gets what is left of it.
        deadline = time.monotonic() + self.settings.deadline_s
        try:
            ctx = await self.admit(route.rule, self.credentials(request, self.settings.forwarded_hops), request_id)
            state["merchant_id"], state["channel"] = ctx.merchant_id, ctx.channel
            message = await self.build_request(route, request, values)
            # Tests hold one route here to fill the gateway (gateway.call.GetMe=3).
            await delays.pause(f"gateway.call.{route.method_name}")
            try:
                reply = await self._callable(route)(message, metadata=ctx.to_metadata(),
                                                    timeout=max(0.001, deadline - time.monotonic()))
            except grpc.aio.AioRpcError as error:
                raise errors.from_rpc_error(error) from None
        except ApiError as error:
            return errors.response(error, request_id)
        except Exception:  # noqa: BLE001 - the caller gets a plain 500, the log gets the trace
            log.exception("gateway.failed", request_id=request_id, route=route.label)
            return errors.response(ApiError("INTERNAL", "internal error"), request_id)
        if http_body.is_http_body(reply.DESCRIPTOR):
            return http_body.response(reply, route.method_name, message)
        body = json_format.MessageToDict(reply, preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
        return overload.JsonResponse(body)

    # ---- operations -----------------------------------------------------------------
    async def readiness(self) -> tuple[bool, dict[str, str]]:
        async def check(name: str) -> str:
            try:
                reply = await health_pb2_grpc.HealthStub(self.channel(name)).Check(
                    health_pb2.HealthCheckRequest(), timeout=self.settings.health_timeout_s)
                return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.aio.AioRpcError as error:
                return error.code().name
        names = list(SERVICE_NAMES)
        results = dict(zip(names, await asyncio.gather(*(check(n) for n in names))))
        return all(v == "SERVING" for v in results.values()), results


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it is known to pass the limit: from its declared
    length before reading anything, else while it arrives (chunked), never held whole."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > strict.MAX_BODY_BYTES:
        raise strict.too_large()
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > strict.MAX_BODY_BYTES:
                raise strict.too_large()
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody reads this answer; it keeps a caller that hung up mid-body out of the 500s.
        raise ApiError("INVALID_ARGUMENT", "the connection closed before the body ended", "BODY_INCOMPLETE") from None
    return b"".join(chunks)


def _method_not_allowed(allowed: str, request_id: str) -> Response:
    body = {"error": {"code": "METHOD_NOT_ALLOWED", "status": 405, "message": f"this path accepts {allowed}",
                      "reason": "METHOD_NOT_ALLOWED", "request_id": request_id}}
    return JSONResponse(body, status_code=405, headers={"Allow": allowed})


class RequestIdMiddleware:
    """Sets the request id, returns it as X-Request-Id, and writes one access log line."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        request_id = request_id_from(headers.get("x-request-id"))
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("gateway.crashed", request_id=request_id)
            if not status["sent"]:
                await errors.response(ApiError("INTERNAL", "internal error"), request_id)(scope, receive, send_with_id)
        finally:
            log.info("http", method=scope["method"], route=state.get("route") or scope.get("path", ""),
                     status=status["code"], latency_ms=round((time.perf_counter() - started) * 1000, 2),
                     request_id=request_id, merchant_id=state.get("merchant_id", ""),
                     channel=state.get("channel", ""))


def create_app(settings: GatewaySettings | None = None, table: Table | None = None) -> Starlette:
    settings = settings or GatewaySettings.load()
    gateway = Gateway(settings, table)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    # Readiness is the gateway's own: started and not stopping. A backend that is away
    # answers its routes with 503 UNAVAILABLE while the others keep serving; taking the
    # whole gateway out of rotation for it would turn one service's outage into everyone's.
    serving = {"started": False}

    async def readyz(request: Request) -> Response:
        body: dict = {"status": "ready" if serving["started"] else "not_ready"}
        if "verbose" in request.query_params:
            body["services"] = (await gateway.readiness())[1]
        return JSONResponse(body, status_code=200 if serving["started"] else 503)

    # Every service's health as the gateway sees it: 200 only when all four are SERVING
    # (what `make run` and the tests wait for before the first request).
    async def healthz_deps(request: Request) -> Response:
        ready, services = await gateway.readiness()
        if ready:
            return JSONResponse({"status": "ready", "services": services})
        not_ready = sorted(n for n, s in services.items() if s != "SERVING")
        return JSONResponse({"status": "not_ready", "services": services, "not_ready": not_ready}, status_code=503)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(gateway.openapi_doc)

    async def docs(request: Request) -> Response:
        return HTMLResponse(gateway.docs_html)

    async def wechat_pay_notify(request: Request) -> Response:
        return await wechat_notify.handle(gateway, request, read_body)

    async def http_error(request: Request, exc: HTTPException) -> Response:
        request_id = request.scope.get("state", {}).get("request_id") or new_id("req")
        if exc.status_code == 405:
            return _method_not_allowed((exc.headers or {}).get("Allow", "GET"), request_id)
        code = {404: "NOT_FOUND", 400: "INVALID_ARGUMENT"}.get(exc.status_code, "INTERNAL")
        body = errors.body(ApiError(code, str(exc.detail)), request_id)
        body["error"]["status"] = exc.status_code
        return JSONResponse(body, status_code=exc.status_code)

    # The live rooms' server-sent events (gateway/live_room.py), before the transcoded routes.
    live = live_room.LiveRoomStream(gateway, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        live.start()
        serving["started"] = True
        yield
        serving["started"] = False
        await live.close()
        await gateway.close()

    app = Starlette(
        routes=[
            HttpRoute("/healthz", healthz, methods=["GET"]),
            HttpRoute("/readyz", readyz, methods=["GET"]),
            HttpRoute("/healthz/deps", healthz_deps, methods=["GET"]),
            HttpRoute("/openapi.json", openapi_json, methods=["GET"]),
            HttpRoute("/docs", docs, methods=["GET"]),
            HttpRoute(wechat_notify.PATH, wechat_pay_notify, methods=["POST"]),
            HttpRoute(live_room.PATH, live.events, methods=["GET"]),
            HttpRoute("/{path:path}", gateway.dispatch, methods=ALL_METHODS),
        ],
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=ALL_METHODS,
                       allow_headers=["*"], expose_headers=["X-Request-Id", "Retry-After"], max_age=600),
            # Inside CORS, so a browser can read the 503 and its Retry-After.
            Middleware(overload.InFlightLimit),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    app.state.live = live
    # ---- the product-detail screen (gateway/product_detail.py), matched before the transcoded routes ----
    detail = product_detail.ProductDetail(gateway)
    app.router.routes.insert(0, HttpRoute(product_detail.PATH, detail.handle, methods=["GET"]))
    gateway.openapi_doc["paths"][product_detail.PATH] = {"get": product_detail.openapi_operation()}
    gateway.docs_html = openapi.docs_page(gateway.openapi_doc)
    # ---- end of the product-detail screen ----
    # ---- the token keys: RS256 public keys (empty with HS256 tokens) ----
    catch_all = next(i for i, r in enumerate(app.router.routes) if getattr(r, "path", "") == "/{path:path}")
    app.router.routes.insert(catch_all, HttpRoute(JWKS_PATH, lambda request: JSONResponse(gateway.jwks()),
                                                  methods=["GET"]))
    return app


def main() -> None:
    settings = GatewaySettings.load()
    slog.configure("gateway", settings.log_level)
    config.refuse_dev_secrets("gateway")
    trust.set_issuer("gateway")
    workers = overload.workers()
    if workers > 1:
        _run_workers(settings, workers)
        return
    metrics.serve(load_settings("gateway").metrics_port)
    profiling.arm("gateway")
    app = create_app(settings)
    log.info("gateway.starting", host=settings.host, port=settings.port, routes=len(app.state.gateway.table.routes))
    # h11 (the HTTP parser installed) through a protocol that answers its refusals in JSON too.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                lifespan="on", timeout_graceful_shutdown=10, http=JsonErrorH11Protocol)


def worker_app() -> Starlette:
    """The app of one worker process (uvicorn imports it by name in each worker)."""
    settings = GatewaySettings.load()
    slog.configure("gateway", settings.log_level)
    trust.set_issuer("gateway")
    profiling.arm("gateway")
    return create_app(settings)


def _run_workers(settings: GatewaySettings, workers: int) -> None:
    """`workers` processes accepting on one socket, their rate limits in one shared table
    (gateway.ratelimit.SharedRateLimiter). Everything else a worker keeps is its own and
    safe to keep per process: caches with a short life, and the live rooms, which each
    worker follows once for its own viewers and reports under its own gateway id."""
    import os

    from gateway.ratelimit import SHARED_STATE_ENV

    shared = overload.shared_state_dir()
    os.environ[SHARED_STATE_ENV] = shared
    log.info("gateway.starting", host=settings.host, port=settings.port, workers=workers)
    try:
        uvicorn.run("gateway.app:worker_app", factory=True, workers=workers, host=settings.host,
                    port=settings.port, log_level="warning", access_log=False, lifespan="on",
                    timeout_graceful_shutdown=10, http=JsonErrorH11Protocol,
                    # A worker reads every proto and builds the API document before it serves:
                    # seconds on a busy machine, which uvicorn's 5 s would take for a hang.
                    timeout_worker_healthcheck=60)
    finally:
        overload.remove_shared_state(shared)
