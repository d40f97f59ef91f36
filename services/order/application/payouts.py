"""PayOutTransfer: pays money out to a member through the merchant's payment provider,
keyed by the caller's transfer id (a withdrawal's id).

The payout is written (PROCESSING) before the provider is called, and the provider keys the
transfer by the same id (WeChat's out_bill_no), so neither a retry nor a crash between the
provider's answer and our write can pay twice: a payout that is not final asks the provider
first and only starts the transfer when the provider never saw it, which answers the one
already started anyway."""
from __future__ import annotations

from datetime import datetime
from typing import Callable, Protocol

from siyu_kit import context
from siyu_kit.errors import FailedPrecondition, Violations
from siyu_kit.protos import utcnow

from services.order.application.provider_ports import TransferRequest, TransferResult, Transfers
from services.order.domain.payouts import NO_WECHAT_IDENTITY, Payout, PayoutState

CHANNELS = ("MINI_PROGRAM", "H5")
MISMATCH = "PAYOUT_MISMATCH"


class PayoutStore(Protocol):
    async def add(self, payout: Payout) -> bool:
        """False when a payout with the transfer id exists (of any merchant)."""

    async def get(self, merchant_id: str, transfer_id: str) -> Payout | None: ...

    async def record(self, payout: Payout) -> bool:
        """Writes the payout's new state if the stored one is still PROCESSING; False when
        another call finalised it first."""


class PayoutTransfers(Transfers, Protocol):
    async def needs_openid(self, merchant_id: str, channel: str) -> bool:
        """True when the merchant pays out through WeChat Pay on the channel (the member's
        openid there receives it); False for the sandbox provider."""


class Openids(Protocol):
    async def openid(self, member_id: str, channel: str) -> str | None: ...


class PayoutUseCases:
    def __init__(self, payouts: PayoutStore, transfers: PayoutTransfers, identities: Openids,
                 clock: Callable[[], datetime] = utcnow):
        self.payouts = payouts
        self.transfers = transfers
        self.identities = identities
        self.clock = clock

    async def pay_out(self, transfer_id: str, member_id: str, amount: int, remark: str, channel: str) -> Payout:
        merchant_id = context.current().merchant_id
        channel = channel or "MINI_PROGRAM"
        v = Violations()
        v.check(amount > 0, "amount.amount", "must be at least 1 fen")
        v.check(channel in CHANNELS, "channel", "MINI_PROGRAM or H5")
        v.raise_if_any()
        existing = await self.payouts.get(merchant_id, transfer_id)
        if existing is not None:
            return await self._follow(self._same(existing, member_id, amount))
        payout = Payout(transfer_id=transfer_id, merchant_id=merchant_id, member_id=member_id, amount=amount,
                        channel=channel, remark=remark, created_at=self.clock())
        openid = await self._openid(payout)
        if openid is None:
            payout.state, payout.failure_reason = PayoutState.FAILED, NO_WECHAT_IDENTITY
        if not await self.payouts.add(payout):
            # Another call took the id first: follow that payout.
            taken = await self.payouts.get(merchant_id, transfer_id)
            if taken is None:
                raise FailedPrecondition(f"transfer id {transfer_id} is taken", reason=MISMATCH)
            return await self._follow(self._same(taken, member_id, amount))
        if payout.final:
            return payout
        return await self._take(payout, await self.transfers.transfer(self._request(payout, openid)))

    @staticmethod
    def _same(payout: Payout, member_id: str, amount: int) -> Payout:
        if not payout.same_request(member_id, amount):
            raise FailedPrecondition(f"transfer {payout.transfer_id} was made for another member or amount",
                                     reason=MISMATCH)
        return payout

    async def _openid(self, payout: Payout) -> str | None:
        """The member's openid for a WeChat merchant; "" when none is needed; None when the
        member has none on the channel."""
        if not await self.transfers.needs_openid(payout.merchant_id, payout.channel):
            return ""
        return await self.identities.openid(payout.member_id, payout.channel) or None

    @staticmethod
    def _request(payout: Payout, openid: str) -> TransferRequest:
        return TransferRequest(merchant_id=payout.merchant_id, transfer_id=payout.transfer_id,
                               member_id=payout.member_id, openid=openid, amount=payout.amount,
                               remark=payout.remark, channel=payout.channel)

    async def _follow(self, payout: Payout) -> Payout:
        """A payout already written: final, it answers as it is; else the provider says where
        the transfer is, and one it never saw is started now (by the same id)."""
        if payout.final:
            return payout
        result = await self.transfers.query(payout.merchant_id, payout.transfer_id)
        if result is None:
            openid = await self._openid(payout)
            if openid is None:
                return await self._take(payout, TransferResult(state=PayoutState.FAILED.value,
                                                               failure_reason=NO_WECHAT_IDENTITY))
            result = await self.transfers.transfer(self._request(payout, openid))
        return await self._take(payout, result)

    async def _take(self, payout: Payout, result: TransferResult) -> Payout:
        if not payout.moved_to(PayoutState(result.state), result.provider_transfer_id, result.failure_reason):
            return payout
        if await self.payouts.record(payout):
            return payout
        return await self.payouts.get(payout.merchant_id, payout.transfer_id) or payout
