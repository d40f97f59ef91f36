"""In-memory payouts and a payment provider's transfers, for the PayOutTransfer use case."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from services.order.application.provider_ports import TransferRequest, TransferResult
from services.order.domain.payouts import Payout, PayoutState


@dataclass
class FakePayouts:
    stored: dict[str, Payout] = field(default_factory=dict)
    # Set to make the next record() fail as a crash would, after the provider answered.
    crash_next_record: bool = False

    async def add(self, payout: Payout) -> bool:
        if payout.transfer_id in self.stored:
            return False
        self.stored[payout.transfer_id] = copy.deepcopy(payout)
        return True

    async def get(self, merchant_id: str, transfer_id: str) -> Payout | None:
        found = self.stored.get(transfer_id)
        return copy.deepcopy(found) if found and found.merchant_id == merchant_id else None

    async def record(self, payout: Payout) -> bool:
        if self.crash_next_record:
            self.crash_next_record = False
            raise ConnectionError("the process died before the write")
        stored = self.stored[payout.transfer_id]
        if stored.state != PayoutState.PROCESSING:
            return False
        self.stored[payout.transfer_id] = copy.deepcopy(payout)
        return True


@dataclass
class FakeTransfers:
    """A provider keyed by transfer id, as WeChat keys by out_bill_no: bills[id] is what it
    holds; `paid` counts the transfers it started."""
    wechat: bool = True
    answer: str = "PROCESSING"
    bills: dict[str, TransferResult] = field(default_factory=dict)
    requests: list[TransferRequest] = field(default_factory=list)
    queries: int = 0

    async def needs_openid(self, merchant_id: str, channel: str) -> bool:
        return self.wechat

    async def transfer(self, request: TransferRequest) -> TransferResult:
        self.requests.append(request)
        if request.transfer_id not in self.bills:
            self.bills[request.transfer_id] = TransferResult(state=self.answer,
                                                             provider_transfer_id=f"bill-{len(self.bills) + 1}")
        return self.bills[request.transfer_id]

    async def query(self, merchant_id: str, transfer_id: str) -> TransferResult | None:
        self.queries += 1
        return self.bills.get(transfer_id)

    def settle(self, transfer_id: str, state: str, reason: str = "") -> None:
        bill = self.bills[transfer_id]
        self.bills[transfer_id] = TransferResult(state=state, provider_transfer_id=bill.provider_transfer_id,
                                                 failure_reason=reason)

    @property
    def paid(self) -> int:
        return len(self.bills)


@dataclass
class FakeOpenids:
    known: dict[tuple[str, str], str] = field(default_factory=dict)

    async def openid(self, member_id: str, channel: str) -> str | None:
        return self.known.get((member_id, channel))
