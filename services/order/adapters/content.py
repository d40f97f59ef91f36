"""The content service's attribution check, seen from the order service."""
from __future__ import annotations

import grpc
from siyu.content.v1 import content_pb2, content_pb2_grpc

from siyu_kit import errors

from services.order.application.ports import CheckedAttribution

TIMEOUT_S = 5.0


class ContentClient:
    def __init__(self, channel: grpc.aio.Channel):
        self._stub = content_pb2_grpc.ContentServiceStub(channel)

    async def check_attribution(self, persona_id: str, content_id: str, share_code: str = "",
                                member_id: str = "", live_session_id: str = "") -> CheckedAttribution:
        """NOT_FOUND naming the attribution field when the persona, the content or the live
        session is not the caller's merchant's; UNAVAILABLE when that cannot be asked. An
        order is never attributed to a source nobody could check. With a share code, what it
        carries when it is the merchant's and the order is within its window; and the live
        prices of the session named (else the code's) when they apply now."""
        try:
            resp = await self._stub.CheckAttribution(
                content_pb2.CheckAttributionRequest(persona_id=persona_id, content_id=content_id,
                                                    share_code=share_code, member_id=member_id,
                                                    live_session_id=live_session_id), timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            raise errors.Unavailable("the order's attribution could not be checked; try again",
                                     reason="CONTENT_UNAVAILABLE") from error
        missing = [errors.FieldViolation(f"attribution.{name}", "no such one in this merchant")
                   for name, found in (("persona_id", resp.persona_found), ("content_id", resp.content_found),
                                       ("live_session_id", resp.live_session_found or not live_session_id))
                   if not found]
        if missing:
            raise errors.NotFound(f"{missing[0].field}: no such one in this merchant",
                                  reason="ATTRIBUTION_NOT_FOUND", violations=missing)
        carried = None
        if share_code and resp.share_code_in_window:
            carried = {"share_code": share_code, "persona_id": resp.persona_id, "content_id": resp.content_id,
                       "live_session_id": resp.live_session_id}
        return CheckedAttribution(carried=carried, live_prices={i.sku_id: i.live_price.amount for i in resp.live_prices},
                                  live_session_id=resp.live_prices_session_id,
                                  sharer_id=resp.share_code_sharer_id if carried is not None else "")
