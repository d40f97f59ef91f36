"""Fingerprints of requests made with an idempotency key."""
from __future__ import annotations

import pytest

from siyu_kit.errors import AlreadyExists

from services.order.domain.idempotency import fingerprint, require_same_request, same_request


def test_a_fingerprint_ignores_key_order_and_tells_values_apart():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1, "b": [1, 2]}) != fingerprint({"a": 1, "b": [2, 1]})
    assert fingerprint({"a": "1"}) != fingerprint({"a": 1}) and len(fingerprint({})) == 64


def test_a_record_without_a_fingerprint_takes_any_replay():
    assert same_request("", "x") and same_request("x", "x") and not same_request("x", "y")
    with pytest.raises(AlreadyExists) as reused:
        require_same_request("x", "y", "order")
    assert reused.value.reason == "IDEMPOTENCY_KEY_REUSED"
