"""Sandbox notifications: signed over every field, and any change breaks the signature."""
from __future__ import annotations

from dataclasses import replace

import pytest

from services.order.adapters.sandbox_payments import SandboxProvider, canonical, sign, verify
from services.order.domain.payments import Notification

SECRET = "test-secret"
BASE = Notification(payment_id="pay_01JAAAAAAAAAAAAAAAAAAAAAAA", provider_txn_id="sbx_txn_1", amount=4498,
                    currency="CNY", result="SUCCESS", timestamp=1_760_000_000)


def signed(n: Notification) -> Notification:
    return replace(n, signature=sign(SECRET, n))


def test_canonical_string():
    assert canonical(BASE) == "pay_01JAAAAAAAAAAAAAAAAAAAAAAA|sbx_txn_1|4498|CNY|SUCCESS|1760000000"


def test_sign_then_verify():
    n = signed(BASE)
    assert len(n.signature) == 64
    assert verify(SECRET, n)
    assert SandboxProvider(SECRET).verify(n)


@pytest.mark.parametrize("change", [
    {"payment_id": "pay_01JBBBBBBBBBBBBBBBBBBBBBBB"}, {"provider_txn_id": "sbx_txn_2"}, {"amount": 4499},
    {"currency": "USD"}, {"result": "FAIL"}, {"timestamp": 1_760_000_001},
])
def test_tampering_any_field_breaks_the_signature(change):
    assert not verify(SECRET, replace(signed(BASE), **change))


def test_missing_wrong_key_or_garbled_signature_fails():
    assert not verify(SECRET, BASE)
    assert not verify("other-secret", signed(BASE))
    n = signed(BASE)
    assert not verify(SECRET, replace(n, signature=n.signature[:-1] + ("0" if n.signature[-1] != "0" else "1")))
    assert not verify(SECRET, replace(n, signature="not-hex"))


def test_sandbox_transaction_ids_are_the_sandboxs():
    # Refunds (keyed by the refund id) are tested in tests/unit/order/test_provider_keys.py.
    assert SandboxProvider.new_txn_id().startswith("sbx_txn_")
