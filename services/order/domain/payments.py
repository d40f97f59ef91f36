"""Payments: the Payment aggregate and its states, what a provider's success means for
the order, and the refund reasons of payments the order could not take."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from siyu_kit.aggregate import Aggregate, StateMachine

from services.order.domain.orders import OrderState
from services.order.domain.refunds import ProviderStatus


class PaymentState(str, Enum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    REFUNDED = "REFUNDED"


# A payment succeeds once and is refunded at most once; a failure leaves it PENDING.
MACHINE: StateMachine[PaymentState] = StateMachine("payment", {
    PaymentState.PENDING: {PaymentState.SUCCEEDED},
    PaymentState.SUCCEEDED: {PaymentState.REFUNDED},
    PaymentState.REFUNDED: set(),
}, refused_reason="STATUS_TRANSITION")


class PaymentMethod(str, Enum):
    SANDBOX = "SANDBOX"
    WECHAT = "WECHAT"
    # The member's balance paid the whole order: no provider took part.
    BALANCE = "BALANCE"


RESULT_SUCCESS = "SUCCESS"
RESULT_FAIL = "FAIL"


@dataclass(frozen=True)
class Notification:
    """A provider's signed statement about one payment."""
    payment_id: str
    provider_txn_id: str
    amount: int
    currency: str
    result: str
    timestamp: int
    signature: str = ""


@dataclass(frozen=True)
class RefundReceipt:
    provider_refund_id: str
    amount: int
    # What the provider says of the money it accepted to send back (see
    # domain.refunds.ProviderStatus): a provider that answers at once is SUCCEEDED; WeChat
    # answers PROCESSING first.
    status: str = "SUCCEEDED"


@dataclass(frozen=True)
class RefundResult:
    """What WeChat says of one refund (its query, or a REFUND.* notification)."""
    out_refund_no: str  # our refund id
    refund_id: str
    status: ProviderStatus
    mch_id: str = ""
    amount: int = 0  # the refunded amount WeChat states (0 when it states none)


class Settlement(str, Enum):
    """What to do with a payment the provider says succeeded."""
    PAY_ORDER = "PAY_ORDER"  # the order takes the money
    DONE = "DONE"  # this payment already paid the order
    REFUND = "REFUND"  # the order cannot take it: send the money back


def settle(order_state: OrderState, order_expired: bool, order_payment_id: str, payment_id: str) -> Settlement:
    if order_state is OrderState.PENDING_PAYMENT and not order_expired:
        return Settlement.PAY_ORDER
    if order_state is not OrderState.PENDING_PAYMENT and order_state is not OrderState.CANCELLED \
            and order_payment_id == payment_id:
        return Settlement.DONE
    return Settlement.REFUND


REFUND_ORDER_CANCELLED = "ORDER_CANCELLED"
REFUND_ORDER_EXPIRED = "ORDER_EXPIRED"
REFUND_ALREADY_PAID = "ORDER_ALREADY_PAID"
# The order took the payment but its units were gone (see orders.CANCEL_STOCK_UNAVAILABLE).
REFUND_STOCK_UNAVAILABLE = "STOCK_UNAVAILABLE"
# The order's balance part changed after the payment started (the member paid again with
# or without balance): the payment no longer pays the order as it stands.
REFUND_TENDER_CHANGED = "TENDER_CHANGED"
# Payments the order could not take: the money went through UNAPPLIED:<order> and back.
AUTO_REFUND_REASONS = frozenset({REFUND_ORDER_CANCELLED, REFUND_ORDER_EXPIRED, REFUND_ALREADY_PAID,
                                 REFUND_TENDER_CHANGED})
# A SUCCEEDED payment neither applied nor refunded this long after it succeeded lost the
# step that follows it (a crash, a dropped notification): the reconcile job finishes it.
RECONCILE_AFTER = timedelta(seconds=5)
# A job run that takes a payment has it alone this long; if it fails, another run retries.
RECONCILE_LEASE = timedelta(seconds=30)


def refund_reason(order_state: OrderState) -> str:
    if order_state is OrderState.CANCELLED:
        return REFUND_ORDER_CANCELLED
    if order_state is OrderState.PENDING_PAYMENT:
        return REFUND_ORDER_EXPIRED
    return REFUND_ALREADY_PAID



def _epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@dataclass(frozen=True)
class Failure:
    """The last FAIL notification of a payment that stays PENDING."""
    provider_txn_id: str
    at: datetime


@dataclass(frozen=True)
class ProviderRefund:
    """The money of a payment sent back at the provider, and why."""
    provider_refund_id: str
    amount: int
    reason: str
    at: datetime | None = None


@dataclass(frozen=True)
class PaymentRefunded:
    """Domain event: the payment's money went back (the order could not take it, or
    its units were gone)."""
    reason: str
    occurred_at: datetime


@dataclass
class Payment(Aggregate):
    """One attempt to pay an order. SUCCEEDED money is `open` until the order took it or
    it was refunded: the reconcile job finishes an open payment after `reconcile_ms`."""
    id: str
    merchant_id: str
    version: int
    member_id: str
    order_id: str
    idempotency_key: str
    amount: int
    currency: str
    created_at: datetime
    method: PaymentMethod = PaymentMethod.SANDBOX
    state: PaymentState = PaymentState.PENDING
    provider_txn_id: str = ""
    succeeded_at: datetime | None = None
    open: bool = False
    reconcile_ms: int = 0
    last_failure: Failure | None = None
    failures: int = 0
    refund: ProviderRefund | None = None
    refunded_at: datetime | None = None
    # The fingerprint of the request that started it (domain.idempotency); "" on older ones.
    request_hash: str = ""
    # WeChat Pay: the channel whose credentials took it, the prepay id WeChat gave, and when
    # the reconcile job next asks WeChat about it while it is PENDING (0: never).
    channel: str = ""
    prepay_id: str = ""
    query_ms: int = 0
    # The part of the order the member's balance pays beside this payment (held for it).
    balance: int = 0
    # What the next save writes besides the state: the repository reads it.
    changed: set[str] = field(default_factory=set, repr=False, compare=False)

    @classmethod
    def start(cls, payment_id: str, *, merchant_id: str, member_id: str, order_id: str, idempotency_key: str,
              amount: int, currency: str, now: datetime, request_hash: str = "", balance: int = 0) -> "Payment":
        return cls(id=payment_id, merchant_id=merchant_id, version=1, member_id=member_id, order_id=order_id,
                   idempotency_key=idempotency_key, amount=amount, currency=currency, created_at=now,
                   request_hash=request_hash, balance=balance)

    @property
    def refund_reason(self) -> str:
        return self.refund.reason if self.refund else ""

    @property
    def was_auto_refunded(self) -> bool:
        """Refunded because the order could not take it (not because units were gone)."""
        return self.state is PaymentState.REFUNDED and self.refund_reason in AUTO_REFUND_REASONS

    def fail(self, provider_txn_id: str, now: datetime) -> bool:
        """A FAIL notification: the order stays payable and the member may try again.
        False for a repeat, or for a payment past PENDING."""
        if self.state is not PaymentState.PENDING or \
                (self.last_failure is not None and self.last_failure.provider_txn_id == provider_txn_id):
            return False
        self.last_failure = Failure(provider_txn_id, now)
        self.failures += 1
        self.changed |= {"last_failure", "failures"}
        return True

    def succeed(self, provider_txn_id: str, now: datetime) -> bool:
        """A SUCCESS notification. The payment is open until applied or refunded: if
        what follows is lost, the reconcile job finishes it. False when not PENDING."""
        if self.state is not PaymentState.PENDING:
            return False
        MACHINE.require(self.state, PaymentState.SUCCEEDED)
        self.state = PaymentState.SUCCEEDED
        self.provider_txn_id = provider_txn_id
        self.succeeded_at = now
        self.open = True
        self.reconcile_ms = _epoch_ms(now + RECONCILE_AFTER)
        self.changed |= {"state", "provider_txn_id", "succeeded_at", "open", "reconcile_ms"}
        if self.query_ms:
            self.query_ms = 0  # nothing left to ask the provider
            self.changed.add("query_ms")
        return True

    def close(self) -> bool:
        """The order took the payment and the ledger has it: nothing is left for the
        reconcile job. False when it was closed already."""
        if not self.open:
            return False
        self.open = False
        self.changed.add("open")
        return True

    def refunded(self, provider_refund_id: str, amount: int, reason: str, now: datetime) -> bool:
        """The provider sent the money back. False when the payment is not SUCCEEDED."""
        if self.state is not PaymentState.SUCCEEDED:
            return False
        MACHINE.require(self.state, PaymentState.REFUNDED)
        self.state = PaymentState.REFUNDED
        self.refunded_at = now
        self.open = False
        self.refund = ProviderRefund(provider_refund_id, amount, reason, now)
        self.changed |= {"state", "refunded_at", "open", "refund"}
        self.record(PaymentRefunded(reason=reason, occurred_at=now))
        return True

    def take_for_reconcile(self, until: datetime) -> int:
        """The job takes the open payment until `until`; returns the reconcile time it
        read (the compare-and-set the repository makes on it)."""
        seen = self.reconcile_ms
        self.reconcile_ms = _epoch_ms(until)
        return seen

    def prepare(self, channel: str, prepay_id: str, now: datetime, query_after: timedelta | None = None) -> None:
        """WeChat gave a prepay id: the job asks WeChat about the payment if no
        notification comes."""
        self.channel = channel
        self.prepay_id = prepay_id
        self.query_ms = _epoch_ms(now + (QUERY_AFTER if query_after is None else query_after))
        self.changed |= {"channel", "prepay_id", "query_ms"}

    def queried(self, now: datetime) -> int:
        """The job asked WeChat about the payment: it asks again later, or never once the
        payment is old. Returns the query time it read (the compare-and-set the repository
        makes on it)."""
        seen = self.query_ms
        self.query_ms = 0 if now - self.created_at >= QUERY_UNTIL else _epoch_ms(now + QUERY_EVERY)
        return seen


# ---- WeChat Pay ---------------------------------------------------------------------

# A notification is only taken this close to its Wechatpay-Timestamp (either side).
NOTIFICATION_WINDOW = timedelta(minutes=5)
# A PENDING WeChat payment with no notification this long after it started is asked about.
QUERY_AFTER = timedelta(seconds=30)
# After that, asked again at this interval, until it is this old.
QUERY_EVERY = timedelta(seconds=30)
QUERY_UNTIL = timedelta(hours=2)
TRADE_SUCCESS = "SUCCESS"
# Trade states after which no payment will come (WeChat's trade_state words).
TRADE_FINAL_FAILURES = frozenset({"CLOSED", "REVOKED", "PAYERROR"})


def notification_fresh(timestamp: str, now: datetime) -> bool:
    """The notification's timestamp (epoch seconds) is within the window around now."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    return abs(now.timestamp() - int(timestamp)) <= NOTIFICATION_WINDOW.total_seconds()


@dataclass(frozen=True)
class WechatCredentials:
    """A merchant's WeChat Pay credentials for one channel (a mini-program or an official
    account). The secrets never print."""
    merchant_id: str
    channel: str
    app_id: str
    mch_id: str
    serial_no: str
    platform_public_key_id: str
    api_v3_key: str = field(repr=False)
    private_key_pem: str = field(repr=False)
    platform_public_key_pem: str = field(repr=False)
    updated_at: datetime | None = None
    updated_by: str = ""


@dataclass(frozen=True)
class TradeResult:
    """What WeChat says of one trade (a notification's resource or a query's answer)."""
    out_trade_no: str
    transaction_id: str
    trade_state: str
    amount: int
    currency: str
    mch_id: str
    app_id: str


@dataclass(frozen=True)
class JsapiParams:
    """Exactly the parameters `wx.requestPayment` takes, and the app they are for."""
    app_id: str
    time_stamp: str
    nonce_str: str
    package: str
    sign_type: str
    pay_sign: str


def trade_mismatch(payment: Payment, trade: TradeResult, credentials: WechatCredentials) -> list[tuple[str, str]]:
    """The fields of WeChat's statement that do not match the payment it names."""
    problems = []
    if trade.mch_id != credentials.mch_id:
        problems.append(("mchid", "is not the merchant's"))
    if trade.app_id and trade.app_id != credentials.app_id:
        problems.append(("appid", "is not the channel's"))
    if trade.amount != payment.amount:
        problems.append(("amount", "does not match the payment"))
    if trade.currency != payment.currency:
        problems.append(("currency", "does not match the payment"))
    return problems

