"""A payout: money paid out to a member through the merchant's payment provider (a
withdrawal's transfer), kept under the caller's transfer id. Its state only moves forward:
PROCESSING → SUCCEEDED or FAILED, and a final state never changes again, so a retried or
late answer of the provider cannot undo what the caller already acted on."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum


class PayoutState(str, Enum):
    PROCESSING = "PROCESSING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


FINAL = {PayoutState.SUCCEEDED, PayoutState.FAILED}

# Why a payout failed before it reached the provider: a WeChat merchant can only pay a member
# who has a WeChat identity (openid) in the channel's app.
NO_WECHAT_IDENTITY = "NO_WECHAT_IDENTITY"


@dataclass
class Payout:
    transfer_id: str
    merchant_id: str
    member_id: str
    amount: int
    channel: str
    remark: str
    created_at: datetime
    state: PayoutState = PayoutState.PROCESSING
    provider_transfer_id: str = ""
    failure_reason: str = ""

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def same_request(self, member_id: str, amount: int) -> bool:
        """A retry names the same member and amount; anything else is another payout
        under a taken id."""
        return (self.member_id, self.amount) == (member_id, amount)

    def moved_to(self, state: PayoutState, provider_transfer_id: str = "", failure_reason: str = "") -> bool:
        """Takes the provider's answer; False when it changes nothing (the payout is final,
        or the answer is the state it is in)."""
        if self.final or state == PayoutState.PROCESSING and not provider_transfer_id:
            return False
        if state == self.state and provider_transfer_id == self.provider_transfer_id:
            return False
        self.state = state
        self.provider_transfer_id = provider_transfer_id or self.provider_transfer_id
        self.failure_reason = failure_reason if state == PayoutState.FAILED else ""
        return True
