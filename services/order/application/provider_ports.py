"""What the money-out use cases need from the payment provider: transfers to members
(withdrawals), profit sharing (the payment split carried out), and the provider's own
statement of a day (reconciliation). WeChat Pay API v3 in production, the local stand-in in
tests; a merchant without WeChat Pay uses the sandbox provider. Amounts are fen."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol, Sequence


# ---- transfers to members (商家转账) --------------------------------------------------

@dataclass(frozen=True)
class TransferRequest:
    merchant_id: str
    # Our id of the payout (a withdrawal's id): the provider's out_bill_no, so a retry
    # never pays twice.
    transfer_id: str
    member_id: str
    openid: str
    amount: int
    remark: str = ""
    # Whose openid it is: the channel's WeChat app (MINI_PROGRAM or H5) pays it.
    channel: str = "MINI_PROGRAM"


@dataclass(frozen=True)
class TransferResult:
    state: str  # PROCESSING, SUCCEEDED or FAILED
    provider_transfer_id: str = ""
    failure_reason: str = ""


class Transfers(Protocol):
    async def transfer(self, request: TransferRequest) -> TransferResult:
        """Starts the transfer, or answers the state of the one already started under
        request.transfer_id (never a second payment)."""

    async def query(self, merchant_id: str, transfer_id: str) -> TransferResult | None:
        """The transfer's state as the provider reports it now; None if it never saw it."""


# ---- profit sharing (分账) -------------------------------------------------------------

@dataclass(frozen=True)
class ShareReceiver:
    # MERCHANT_ID (a supplier's or the platform's provider account) or PERSONAL_OPENID.
    kind: str
    account: str
    amount: int
    description: str


@dataclass(frozen=True)
class ShareRequest:
    merchant_id: str
    # The provider's id of the paid transaction the money is shared from.
    provider_txn_id: str
    # Our id of the split (out_order_no): a retry never shares twice.
    split_id: str
    receivers: Sequence[ShareReceiver]
    # True: whatever is not shared goes to the merchant now (unfreeze_unsplit).
    unfreeze_rest: bool = True


@dataclass(frozen=True)
class ShareResult:
    state: str  # PROCESSING or FINISHED
    provider_order_id: str = ""
    # Per receiver account: SUCCESS, PENDING or CLOSED (with the provider's reason).
    receivers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ShareReturnRequest:
    """Money a receiver gives back after a refund of a shared order (profit-sharing return)."""
    merchant_id: str
    split_id: str
    # Our id of the return (out_return_no).
    return_id: str
    account: str
    amount: int
    description: str


@dataclass(frozen=True)
class ShareReturnResult:
    state: str  # PROCESSING, SUCCESS or FAILED
    failure_reason: str = ""


class ProfitSharing(Protocol):
    async def share(self, request: ShareRequest) -> ShareResult:
        """Shares a paid transaction's money; repeated with the same split_id answers the
        first share."""

    async def return_share(self, request: ShareReturnRequest) -> ShareReturnResult:
        """Takes back from a receiver what a later refund reverses; keyed by return_id."""

    async def unfreeze(self, merchant_id: str, provider_txn_id: str, split_id: str) -> ShareResult:
        """Releases to the merchant whatever of the transaction is still frozen."""


# ---- the provider's statement (对账单) -------------------------------------------------

@dataclass(frozen=True)
class StatementRow:
    """One line of the provider's statement of a day: a payment or a refund."""
    kind: str  # PAYMENT or REFUND
    # Our ids as the provider knows them: the payment's out_trade_no, the refund's out_refund_no.
    our_id: str
    provider_id: str
    amount: int
    fee: int
    at: datetime


class ProviderStatements(Protocol):
    async def statement(self, merchant_id: str, day: date) -> Sequence[StatementRow]:
        """Every payment and refund the provider recorded for the merchant on the day
        (Asia/Shanghai), from its downloadable trade bill."""
