"""The sandbox payment provider: signs and verifies its notifications with
HMAC-SHA256 over "payment_id|provider_txn_id|amount|currency|result|timestamp" (hex),
and records refunds without moving real money, keyed by our refund id as WeChat keys
them by out_refund_no (services/order/adapters/sandbox_ledger.py): the same refund id
again answers the refund made, never a second one; with another amount it is refused."""
from __future__ import annotations

import hashlib
import hmac

from siyu_kit import db
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow

from services.order.adapters.sandbox_ledger import REFUNDS, SandboxLedger
from services.order.domain.payments import Notification, Payment, PaymentMethod, RefundReceipt


def canonical(n: Notification) -> str:
    return "|".join([n.payment_id, n.provider_txn_id, str(int(n.amount)), n.currency, n.result,
                     str(int(n.timestamp))])


def sign(secret: str, n: Notification) -> str:
    return hmac.new(secret.encode(), canonical(n).encode(), hashlib.sha256).hexdigest()


def verify(secret: str, n: Notification) -> bool:
    if not n.signature:
        return False
    # Bytes, not str: compare_digest refuses non-ASCII text, and a hostile caller sends some.
    return hmac.compare_digest(sign(secret, n).encode(), n.signature.lower().encode())


class SandboxProvider:
    """The PaymentProvider port for the sandbox wallet."""
    method = PaymentMethod.SANDBOX

    def __init__(self, secret: str, ledger: SandboxLedger | None = None):
        if not secret:
            raise ValueError("the sandbox payment secret must not be empty")
        self._secret = secret
        self._ledger = ledger or SandboxLedger(db.database)

    def sign(self, notification: Notification) -> str:
        return sign(self._secret, notification)

    def verify(self, notification: Notification) -> bool:
        return verify(self._secret, notification)

    async def refund(self, payment: Payment, refund_id: str, amount: int) -> RefundReceipt:
        made = await self._ledger.keyed(
            REFUNDS, refund_id,
            {"merchant_id": payment.merchant_id, "payment_id": payment.id, "amount": amount},
            lambda: {"provider_refund_id": new_id("sbxrf"), "provider_txn_id": payment.provider_txn_id,
                     "currency": payment.currency},
            utcnow())
        return RefundReceipt(provider_refund_id=made["provider_refund_id"], amount=made["amount"])

    async def find(self, payment: Payment, refund_id: str) -> RefundReceipt | None:
        made = await self._ledger.find(REFUNDS, refund_id)
        if made is None or made.get("payment_id") != payment.id:
            return None
        return RefundReceipt(provider_refund_id=made["provider_refund_id"], amount=made["amount"])

    @staticmethod
    def new_txn_id() -> str:
        return new_id("txn").replace("txn_", "sbx_txn_", 1)
