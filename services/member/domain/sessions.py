"""Token subjects and refresh tokens.

A subject's token version is stored on its document and written into every token it is
issued; moving it ends every token issued before. A refresh token is ACTIVE until it is
used once (USED) or revoked at logout (REVOKED); both ends are final.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from siyu_kit.aggregate import StateMachine

ACTIVE, USED, REVOKED = "ACTIVE", "USED", "REVOKED"
REFRESH_TOKEN = StateMachine("refresh token", {ACTIVE: {USED, REVOKED}, USED: set(), REVOKED: set()},
                             refused_reason="TOKEN_REVOKED")
STAFF_PREFIX, MEMBER_PREFIX = "stf_", "mem_"


@dataclass(frozen=True)
class Subject:
    """Whom a token names, as the gateway checks it: the current token version, and
    whether the subject may still use tokens at all."""
    version: int
    active: bool
    roles: tuple[str, ...] = ()


NO_SUBJECT = Subject(0, False)


@dataclass(frozen=True)
class RefreshToken:
    id: str  # rft_…, the token's jti
    merchant_id: str
    subject_id: str  # stf_… or mem_…
    created_at: datetime
    expires_at: datetime
    state: str = ACTIVE
