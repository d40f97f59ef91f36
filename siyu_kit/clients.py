"""gRPC channels to other services that carry the current request context along."""
from __future__ import annotations

import grpc

from siyu_kit import context


class _PropagateContext(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, calling_service: str):
        self.calling_service = calling_service

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        md = list(client_call_details.metadata or ())
        present = {k for k, _ in md}
        md.extend(p for p in context.current().to_metadata(self.calling_service) if p[0] not in present)
        details = client_call_details._replace(metadata=grpc.aio.Metadata(*md))
        return await continuation(details, request)


# A service that was away is asked again within 2 s of coming back. gRPC's own backoff grows
# to 120 s, so a caller could keep answering UNAVAILABLE for two minutes after a restart.
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
                   ("grpc.max_reconnect_backoff_ms", 2000))


def channel(addr: str, calling_service: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(addr, options=CHANNEL_OPTIONS, interceptors=[_PropagateContext(calling_service)])
