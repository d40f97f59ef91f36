"""The member service's address book as the order service reads it: the phone sealed at
once, the default and a named address read on every call (never remembered), and the member service's refusals turned into the order's."""
from __future__ import annotations

import grpc
import pytest
from siyu.member.v1 import member_pb2

from siyu_kit import context
from siyu_kit.context import RequestContext
from siyu_kit.errors import NotFound, Unavailable
from siyu_kit.sealing import Sealer, new_key

from services.order.adapters.member import AddressClient

PHONE = "13812348000"


class Refused(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode):
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=code.name)


class Stub:
    def __init__(self):
        self.calls: list[str] = []
        self.book: dict[str, member_pb2.Address] = {}
        self.down = False

    async def GetShippingAddress(self, request, timeout=None):
        self.calls.append(request.address_id)
        if self.down:
            raise Refused(grpc.StatusCode.UNAVAILABLE)
        found = self.book.get(request.address_id or "default")
        if found is None:
            raise Refused(grpc.StatusCode.NOT_FOUND)
        return member_pb2.GetShippingAddressResponse(address=found, phone=PHONE)


@pytest.fixture
def client():
    token = context.use(RequestContext(request_id="req_1", merchant_id="mch_1", caller_kind="member",
                                       caller_id="mem_1"))
    c = AddressClient.__new__(AddressClient)
    c._stub, c._sealer = Stub(), Sealer.from_setting(new_key())
    yield c
    context.reset(token)


def address(address_id: str) -> member_pb2.Address:
    return member_pb2.Address(address_id=address_id, recipient="张三", phone_masked="138****8000",
                              province_code="440000", city_code="440300", district_code="440305",
                              province_name="广东省", city_name="深圳市", district_name="南山区", detail="1 号")


async def test_the_phone_is_sealed_to_the_merchant_and_masked(client):
    client._stub.book["default"] = address("adr_1")
    found = await client.shipping_address("mem_1", "")
    assert (found.address_id, found.phone_masked, found.city_name) == ("adr_1", "138****8000", "深圳市")
    assert PHONE not in repr(found) and client._sealer.open(found.phone_sealed, "mch_1") == PHONE


async def test_the_default_is_read_on_every_call_so_a_new_default_ships_at_once(client):
    assert await client.shipping_address("mem_1", "") is None  # no book yet
    client._stub.book["default"] = address("adr_1")
    assert (await client.shipping_address("mem_1", "")).address_id == "adr_1"  # the quote
    client._stub.book["default"] = address("adr_3")  # the member changes the default…
    assert (await client.shipping_address("mem_1", "")).address_id == "adr_3"  # …and orders at once
    assert client._stub.calls == ["", "", ""]
    client._stub.book["adr_2"] = address("adr_2")
    assert (await client.shipping_address("mem_1", "adr_2")).address_id == "adr_2"
    assert client._stub.calls == ["", "", "", "adr_2"]


async def test_refusals(client):
    with pytest.raises(NotFound) as missing:
        await client.shipping_address("mem_1", "adr_9")
    assert missing.value.reason == "ADDRESS_NOT_FOUND"
    client._stub.down = True
    with pytest.raises(Unavailable) as down:
        await client.shipping_address("mem_1", "")
    assert down.value.reason == "ADDRESS_UNAVAILABLE"
