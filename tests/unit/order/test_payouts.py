"""PayOutTransfer's rules over in-memory fakes: one payout per transfer id, a retry asks the
provider and never pays twice (also after a crash between the provider's answer and our
write), final states never change, and a WeChat merchant needs the member's openid."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

from siyu_kit import context
from siyu_kit.context import RequestContext
from siyu_kit.errors import FailedPrecondition, InvalidArgument
from siyu_kit.ids import new_id
from tests.fakes.payouts import FakeOpenids, FakePayouts, FakeTransfers

from services.order.application.payouts import PayoutUseCases
from services.order.domain.payouts import Payout, PayoutState

MERCHANT, OTHER = "mch_01J00000000000000000000001", "mch_01J00000000000000000000002"
MEMBER = "mem_01J00000000000000000000001"


class World:
    def __init__(self, wechat: bool = True, answer: str = "PROCESSING"):
        self.store = FakePayouts()
        self.provider = FakeTransfers(wechat=wechat, answer=answer)
        self.openids = FakeOpenids({(MEMBER, "MINI_PROGRAM"): "o-member"})
        self.cases = PayoutUseCases(self.store, self.provider, self.openids,
                                    clock=lambda: datetime(2026, 12, 1, tzinfo=timezone.utc))

    async def pay(self, transfer_id: str, amount: int = 500, member_id: str = MEMBER, channel: str = "",
                  merchant_id: str = MERCHANT) -> Payout:
        with acting(merchant_id):
            return await self.cases.pay_out(transfer_id, member_id, amount, "佣金提现", channel)


@contextmanager
def acting(merchant_id: str):
    token = context.use(RequestContext(request_id=new_id("req"), merchant_id=merchant_id,
                                       calling_service="member"))
    try:
        yield
    finally:
        context.reset(token)


async def test_a_sandbox_payout_succeeds_at_once_without_an_openid():
    w = World(wechat=False, answer="SUCCEEDED")
    payout = await w.pay(new_id("wdr"), member_id="mem_01J0000000000000000000000Z")
    assert payout.state == PayoutState.SUCCEEDED and w.provider.requests[0].openid == ""


async def test_a_wechat_payout_goes_to_the_members_openid_and_retries_ask_the_provider():
    w = World()
    tid = new_id("wdr")
    first = await w.pay(tid)
    assert first.state == PayoutState.PROCESSING and w.provider.requests[0].openid == "o-member"
    w.provider.settle(tid, "SUCCEEDED")
    again = await w.pay(tid)
    assert again.state == PayoutState.SUCCEEDED and again.provider_transfer_id == first.provider_transfer_id
    assert w.provider.paid == 1 and len(w.provider.requests) == 1 and w.provider.queries == 1


async def test_a_final_payout_answers_without_asking_and_never_changes():
    w = World()
    tid = new_id("wdr")
    await w.pay(tid)
    w.provider.settle(tid, "FAILED", "ACCOUNT_FROZEN")
    failed = await w.pay(tid)
    assert (failed.state, failed.failure_reason) == (PayoutState.FAILED, "ACCOUNT_FROZEN")
    w.provider.settle(tid, "SUCCEEDED")  # a provider changing its mind is not believed
    queries = w.provider.queries
    assert (await w.pay(tid)).state == PayoutState.FAILED and w.provider.queries == queries


async def test_a_crash_between_the_providers_answer_and_our_write_never_pays_twice():
    w = World(answer="SUCCEEDED")
    tid = new_id("wdr")
    w.store.crash_next_record = True
    with pytest.raises(ConnectionError):
        await w.pay(tid)
    assert w.store.stored[tid].state == PayoutState.PROCESSING and w.provider.paid == 1
    done = await w.pay(tid)
    assert done.state == PayoutState.SUCCEEDED and len(w.provider.requests) == 1


async def test_a_payout_the_provider_never_saw_is_started_on_the_retry():
    w = World()
    tid = new_id("wdr")
    # The payout was written, then the process died before calling the provider.
    w.store.stored[tid] = Payout(tid, MERCHANT, MEMBER, 500, "MINI_PROGRAM", "", datetime.now(timezone.utc))
    payout = await w.pay(tid)
    assert payout.state == PayoutState.PROCESSING and w.provider.paid == 1


async def test_the_provider_paid_before_we_wrote_anything_answers_that_transfer():
    w = World(answer="SUCCEEDED")
    tid = new_id("wdr")
    await w.provider.transfer(_request(tid))
    payout = await w.pay(tid)
    assert payout.state == PayoutState.SUCCEEDED and w.provider.paid == 1


def _request(tid):
    from services.order.application.provider_ports import TransferRequest
    return TransferRequest(merchant_id=MERCHANT, transfer_id=tid, member_id=MEMBER, openid="o-member", amount=500)


async def test_a_wechat_merchants_member_without_an_openid_fails_and_nothing_is_paid():
    w = World()
    tid = new_id("wdr")
    payout = await w.pay(tid, channel="H5")
    assert (payout.state, payout.failure_reason) == (PayoutState.FAILED, "NO_WECHAT_IDENTITY")
    assert w.provider.paid == 0
    # Written: the answer stays the same, even once the member has an openid.
    w.openids.known[(MEMBER, "H5")] = "o-h5"
    assert (await w.pay(tid, channel="H5")).state == PayoutState.FAILED and w.provider.paid == 0


async def test_the_same_transfer_id_for_another_amount_or_member_is_refused():
    w = World()
    tid = new_id("wdr")
    await w.pay(tid, amount=500)
    for kwargs in ({"amount": 501}, {"member_id": "mem_01J0000000000000000000000Z"}):
        with pytest.raises(FailedPrecondition) as refused:
            await w.pay(tid, **kwargs)
        assert refused.value.reason == "PAYOUT_MISMATCH"
    # Another merchant cannot see or reuse it.
    with pytest.raises(FailedPrecondition):
        await w.pay(tid, merchant_id=OTHER)
    assert w.provider.paid == 1


@pytest.mark.parametrize("amount, channel, field", [(0, "", "amount.amount"), (100, "LIVE", "channel")])
async def test_bad_input_is_refused_and_nothing_written(amount, channel, field):
    w = World()
    with pytest.raises(InvalidArgument) as refused:
        await w.pay(new_id("wdr"), amount=amount, channel=channel)
    assert [v.field for v in refused.value.violations] == [field]
    assert not w.store.stored and w.provider.paid == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["pay", "SUCCEEDED", "FAILED", "PROCESSING", "crash"]), max_size=12))
def test_any_sequence_of_retries_and_provider_answers_pays_once_and_only_moves_forward(steps):
    import asyncio

    async def run():
        w = World()
        tid = new_id("wdr")
        seen: list[PayoutState] = []
        for step in steps:
            if step == "crash":
                w.store.crash_next_record = True
            elif step == "pay":
                try:
                    seen.append((await w.pay(tid)).state)
                except ConnectionError:
                    pass
            elif tid in w.provider.bills:
                w.provider.settle(tid, step)
        assert w.provider.paid <= 1
        finals = [s for s in seen if s != PayoutState.PROCESSING]
        assert len(set(finals)) <= 1  # once final, always the same
        if finals:
            assert seen[seen.index(finals[0]):] == [finals[0]] * (len(seen) - seen.index(finals[0]))
    asyncio.run(run())
