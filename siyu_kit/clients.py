"""gRPC channels to other services that carry the current request context along."""
from __future__ import annotations

import grpc

from siyu_kit import admission, context, trust


class _PropagateContext(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, calling_service: str):
        self.calling_service = calling_service

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        md = list(client_call_details.metadata or ())
        present = {k for k, _ in md}
        if trust.MD_ASSERTION in present:
            # Signed by the caller's to_metadata; only a missing calling service is added.
            if context.MD_SERVICE not in present and self.calling_service:
                md = list(trust.signed(md + [(context.MD_SERVICE, self.calling_service)], self.calling_service))
        else:
            md.extend(p for p in context.current().identity_pairs(self.calling_service) if p[0] not in present)
            md = list(trust.signed(md, self.calling_service))
        details = client_call_details._replace(metadata=grpc.aio.Metadata(*md),
                                               timeout=outgoing_timeout(client_call_details.timeout))
        return await continuation(details, request)


def outgoing_timeout(asked: float | None) -> float | None:
    """A call made while serving another gets at most what is left of that call's deadline:
    an answer after the caller has gone is work for nobody."""
    lefts = [t for t in (admission.time_left(), context.current().time_left()) if t is not None]
    if not lefts:
        return asked
    left = max(0.001, min(lefts))
    return left if asked is None else min(asked, left)


# A service that was away is asked again within 2 s of coming back. gRPC's own backoff grows
# to 120 s, so a caller could keep answering UNAVAILABLE for two minutes after a restart.
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
                   ("grpc.max_reconnect_backoff_ms", 2000))

# Client-side load balancing: a `dns:///` target resolves to every address behind the name
# (on Kubernetes a headless Service lists every ready pod) and round_robin spreads the calls
# over them; with the default pick_first one connection would pin one pod for its life.
# Keepalive pings notice a pod that vanished without closing its connections (a node lost)
# within KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS instead of the kernel's minutes.
# A ping unanswered for 20 s ends the connection: shorter, a busy two-core machine drops
# healthy ones.
KEEPALIVE_TIME_MS = 60_000
KEEPALIVE_TIMEOUT_MS = 20_000
# Messages up to 16 MiB both ways (lists of hundreds of products with their SKUs).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Calls a server holds before its handlers pick them up. gRPC's default (1,000) cancels the
# oldest of a larger burst (a flash sale's presses arriving at once) with CANCELLED; the
# admission bound (siyu_kit/admission.py) answers the excess with OVERLOADED instead.
MAX_PENDING_REQUESTS = 5_000
# A server closes each connection after this age (plus a grace for calls under way); the
# client reconnects and resolves the name again, so replicas added by the autoscaler get
# traffic from clients that were already connected.
MAX_CONNECTION_AGE_MS = 300_000
MAX_CONNECTION_AGE_GRACE_MS = 30_000


def channel_options() -> tuple[tuple[str, object], ...]:
    """Options of every channel to a service: a service's own clients and the gateway's."""
    return (*CHANNEL_OPTIONS,
            ("grpc.lb_policy_name", "round_robin"),
            ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
            ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES))


def server_options() -> tuple[tuple[str, object], ...]:
    """Options of a service's gRPC server that match `channel_options`: it accepts the
    clients' keepalive pings (the default would answer them with GOAWAY too_many_pings) and
    ages connections out so clients re-resolve."""
    return (("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
            ("grpc.http2.max_ping_strikes", 0),
            ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
            ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS),
            ("grpc.server.max_pending_requests", MAX_PENDING_REQUESTS),
            ("grpc.server.max_pending_requests_hard_limit", 2 * MAX_PENDING_REQUESTS),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES))


def target(addr: str) -> str:
    """The channel target of a `host:port` address: resolved by DNS to every address behind
    the name. An address that already names its resolver (`dns:`, `ipv4:`, `unix:`) is kept."""
    if ":/" in addr or addr.startswith(("ipv4:", "ipv6:", "unix:")):
        return addr
    return f"dns:///{addr}"


def channel(addr: str, calling_service: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target(addr), options=channel_options(),
                                     interceptors=[_PropagateContext(calling_service)])
