"""gRPC channels to other services that carry the current request context along."""
from __future__ import annotations

import grpc

from siyu_kit import context, trust


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
        details = client_call_details._replace(metadata=grpc.aio.Metadata(*md))
        return await continuation(details, request)


# A service that was away is asked again within 2 s of coming back. gRPC's own backoff grows
# to 120 s, so a caller could keep answering UNAVAILABLE for two minutes after a restart.
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 200), ("grpc.min_reconnect_backoff_ms", 200),
                   ("grpc.max_reconnect_backoff_ms", 2000))


def channel(addr: str, calling_service: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(addr, options=CHANNEL_OPTIONS, interceptors=[_PropagateContext(calling_service)])
