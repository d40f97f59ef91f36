"""The PayOutTransfer client: the provider's answers, and which failures to call mean
"ask again later" (the withdrawal stays PAYING) rather than a failed transfer."""
from __future__ import annotations

import grpc
import pytest
from siyu.order.v1 import order_pb2

from services.member.adapters.order_payouts import OrderPayoutsClient


class Stub:
    def __init__(self, answer):
        self.answer = answer
        self.requests = []

    async def PayOutTransfer(self, request, timeout):
        self.requests.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def client(answer) -> tuple[OrderPayoutsClient, Stub]:
    c = OrderPayoutsClient.__new__(OrderPayoutsClient)
    c._stub = Stub(answer)
    return c, c._stub


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="x")


async def test_the_providers_answer_is_passed_on_keyed_by_the_withdrawal():
    c, stub = client(order_pb2.PayOutTransferResponse(state=order_pb2.TRANSFER_STATE_SUCCEEDED,
                                                      provider_transfer_id="tb-9"))
    got = await c.transfer("mch_1", "wdr_1", "mem_1", 990, "a remark longer than thirty-two characters!")
    assert (got.state, got.provider_transfer_id) == ("SUCCEEDED", "tb-9")
    sent = stub.requests[0]
    assert (sent.transfer_id, sent.member_id, sent.amount.amount, len(sent.remark)) == ("wdr_1", "mem_1", 990, 32)
    c, _ = client(order_pb2.PayOutTransferResponse(state=order_pb2.TRANSFER_STATE_FAILED, failure_reason="NO_AUTH"))
    assert (await c.transfer("m", "wdr_1", "mem_1", 1, "")).failure_reason == "NO_AUTH"
    c, _ = client(order_pb2.PayOutTransferResponse(state=order_pb2.TRANSFER_STATE_PROCESSING))
    assert (await c.transfer("m", "wdr_1", "mem_1", 1, "")).state == "PROCESSING"


@pytest.mark.parametrize("code", [grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL])
async def test_no_answer_is_later_never_failed(code):
    c, _ = client(rpc_error(code))
    assert (await c.transfer("m", "wdr_1", "mem_1", 1, "")).state == "LATER"


async def test_a_refused_request_is_a_failed_transfer():
    c, _ = client(rpc_error(grpc.StatusCode.INVALID_ARGUMENT))
    got = await c.transfer("m", "wdr_1", "mem_1", 1, "")
    assert got.state == "FAILED" and got.failure_reason.startswith("INVALID_ARGUMENT")
