"""The sandbox payment provider: signs and verifies its notifications with
HMAC-SHA256 over "payment_id|provider_txn_id|amount|currency|result|timestamp" (hex),
and records refunds without moving real money."""
from __future__ import annotations

import hashlib
import hmac

from siyu_kit.ids import new_id

from services.order.domain.payments import Notification, PaymentMethod, RefundReceipt


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

    def __init__(self, secret: str):
        if not secret:
            raise ValueError("the sandbox payment secret must not be empty")
        self._secret = secret

    def sign(self, notification: Notification) -> str:
        return sign(self._secret, notification)

    def verify(self, notification: Notification) -> bool:
        return verify(self._secret, notification)

    async def refund(self, payment_id: str, provider_txn_id: str, amount: int, currency: str) -> RefundReceipt:
        return RefundReceipt(provider_refund_id=new_id("sbxrf"), amount=amount)

    @staticmethod
    def new_txn_id() -> str:
        return new_id("txn").replace("txn_", "sbx_txn_", 1)
