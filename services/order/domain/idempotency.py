"""Idempotency keys: a replay of the same request returns the first result; the same key
with a different request is refused, never answered with the first result.

A record created with a key (order, payment, refund) keeps the fingerprint of the request
that created it: a SHA-256 of the request's canonical JSON (sorted keys, no spaces),
without the key itself. Records written before fingerprints were kept have none and are
replayed as before.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from siyu_kit.errors import AlreadyExists

KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


def fingerprint(request: Any) -> str:
    """The fingerprint of a request given as plain data (dicts, lists, strings, numbers)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def same_request(stored: str, given: str) -> bool:
    """Whether a replay asks for what the stored record was created for."""
    return not stored or stored == given


def require_same_request(stored: str, given: str, what: str) -> None:
    """Refuses a key that created `what` for another request."""
    if not same_request(stored, given):
        raise AlreadyExists(f"the idempotency key was used for another {what} request; use a new key",
                            reason=KEY_REUSED)
