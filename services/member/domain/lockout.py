"""Staff login lock-out: fixed one-minute windows of failed attempts, per account and
per client address.

An attempt takes a slot in both windows before the password is checked, and a correct
password gives its slots back; so a window counts failures plus attempts in flight, and
no more than the limit of passwords are ever checked in a window, however many replicas
and callers race. The 11th attempt of a minute on one account is refused unchecked.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

ACCOUNT = "acct"
ADDRESS = "addr"


@dataclass(frozen=True)
class LoginLimits:
    per_account: int = 10
    per_address: int = 50
    window_s: int = 60


def window_of(now_s: float, window_s: int) -> int:
    return int(now_s // window_s)


def retry_after_s(now_s: float, window: int, window_s: int) -> int:
    """Whole seconds until the window ends (at least 1)."""
    return max(1, int((window + 1) * window_s - now_s + 0.999))


def counter_id(scope: str, subject: str, window: int) -> str:
    """The counter document's id. Subjects are hashed: no username or address is stored."""
    digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
    return f"{scope}:{digest}:{window}"


def account_subject(merchant_code: str, username: str) -> str:
    # Counted whether or not the merchant and user exist, so a refusal reveals neither.
    return f"{merchant_code}\x00{username}"
