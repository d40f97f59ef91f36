"""Merchants, their channel keys and staff users: the rules and the aggregates."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from siyu_kit.aggregate import Aggregate

from services.member.domain.config import MerchantConfig

CODE = re.compile(r"^[a-z0-9-]{2,40}$")
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
API_KEY = re.compile(r"^[\x21-\x7e]{16,128}$")
NAME_MAX = 100


def valid_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def key_hash(api_key: str) -> str:
    """Only this hash of a channel key is stored; the key itself never is."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass
class Merchant(Aggregate):
    """A merchant: `merchant_id` is its own id, so every look-up is filtered by it."""
    id: str  # mch_…
    merchant_id: str
    version: int
    code: str
    name: str
    time_zone: str
    config: MerchantConfig = field(default_factory=MerchantConfig)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def create(cls, merchant_id: str, code: str, name: str, time_zone: str, now: datetime) -> "Merchant":
        return cls(id=merchant_id, merchant_id=merchant_id, version=1, code=code, name=name, time_zone=time_zone,
                   config=MerchantConfig(), created_at=now, updated_at=now)

    def rename(self, name: str, time_zone: str, now: datetime) -> bool:
        """False when it already has this name and zone (nothing to save)."""
        if (self.name, self.time_zone) == (name, time_zone):
            return False
        self.name, self.time_zone, self.updated_at = name, time_zone, now
        return True

    def reconfigure(self, config: MerchantConfig, now: datetime) -> None:
        """New member settings (tiers and their benefits); saved on the version read."""
        self.config, self.updated_at = config, now


@dataclass(frozen=True)
class ApiKey:
    """A channel key bound to one merchant's channel; only its hash is kept."""
    id: str  # key_…
    merchant_id: str
    channel: str
    key_hash: str
    created_at: datetime | None = None
    # What may be shown of the key later (its first characters and last four); empty for
    # keys bound before these were kept.
    prefix: str = ""
    last4: str = ""
    disabled: bool = False


@dataclass
class StaffUser(Aggregate):
    id: str  # stf_…
    merchant_id: str
    version: int
    username: str
    password_hash: str
    roles: tuple[str, ...]
    disabled: bool = False
    # Moves when the user's tokens must end (roles, password, disabled, logout).
    token_version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def create(cls, staff_id: str, merchant_id: str, username: str, password_hash: str, roles: tuple[str, ...],
               disabled: bool, now: datetime) -> "StaffUser":
        return cls(id=staff_id, merchant_id=merchant_id, version=1, username=username, password_hash=password_hash,
                   roles=roles, disabled=disabled, token_version=1, created_at=now, updated_at=now)

    def change(self, password_hash: str, roles: tuple[str, ...], disabled: bool, now: datetime) -> None:
        """A new password, roles or state; every token issued before ends with it."""
        self.password_hash, self.roles, self.disabled, self.updated_at = password_hash, roles, disabled, now
        self.token_version += 1
