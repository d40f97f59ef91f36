"""gRPC channels to other services that carry the current request context along."""
from __future__ import annotations

import grpc

from siyu_kit import admission, context


class _PropagateContext(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, calling_service: str):
        self.calling_service = calling_service

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        md = list(client_call_details.metadata or ())
        present = {k for k, _ in md}
        md.extend(p for p in context.current().to_metadata(self.calling_service) if p[0] not in present)
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


def channel(addr: str, calling_service: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(addr, options=CHANNEL_OPTIONS, interceptors=[_PropagateContext(calling_service)])


# ---- channel and stream settings (callers under load) ----------------------------------
# Keepalive pings find a connection that died silently (a pod gone, a NAT timeout) within
# a minute or so rather than at the next call's deadline (a ping unanswered for 20 s ends
# the connection: shorter, a busy two-core machine drops healthy ones); pings are allowed without calls so an
# idle channel is still known to be alive. Messages up to 16 MiB both ways (lists of
# hundreds of products with their SKUs).
KEEPALIVE_OPTIONS = (("grpc.keepalive_time_ms", 60_000), ("grpc.keepalive_timeout_ms", 20_000),
                     ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0),
                     ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                     ("grpc.max_send_message_length", 16 * 1024 * 1024))


def channel_options() -> tuple[tuple[str, int], ...]:
    """The options of every client channel: reconnect backoff and keepalive."""
    return (*CHANNEL_OPTIONS, *KEEPALIVE_OPTIONS)
