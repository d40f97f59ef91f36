"""The address book aggregate: one member's shipping addresses, kept whole so its rules
hold in one conditional write — at most 20 addresses, exactly one default while any
exist, a creation key used once, and for one request only: each key keeps the fingerprint
of the request that used it, and the same key with another request is refused.

The phone number arrives here already sealed (encrypted for the merchant) with its masked
form; the book never holds it readable."""
from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.member.domain.regions import RegionPath
from siyu_kit.aggregate import Aggregate
from siyu_kit.errors import AlreadyExists, Conflict, FailedPrecondition, NotFound

MAX_ADDRESSES = 20
# Creation keys remembered per member, newest last; an older key is forgotten.
KEYS_KEPT = 100


@dataclass(frozen=True)
class Address:
    id: str  # adr_…
    recipient: str
    phone_sealed: str
    phone_masked: str
    region: RegionPath
    detail: str
    created_at: datetime
    version: int = 1


@dataclass(frozen=True)
class AddressInput:
    """What the member sends, checked; the phone sealed, or empty to keep the stored one."""
    recipient: str
    phone_sealed: str
    phone_masked: str
    region: RegionPath
    detail: str


def creation_fingerprint(key: bytes, recipient: str, phone: str, province_code: str, city_code: str,
                         district_code: str, detail: str, make_default: bool) -> str:
    """What a creation asked for, to tell a replay from another request under the same key:
    a keyed hash (the look-up key) of the request's canonical JSON, without the key itself.
    Keyed, because the phone is in it and the rest of the request is stored beside it."""
    canonical = json.dumps({"recipient": recipient, "phone": phone, "province_code": province_code,
                            "city_code": city_code, "district_code": district_code, "detail": detail,
                            "is_default": make_default}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _not_found() -> NotFound:
    return NotFound("the member has no such address", reason="ADDRESS_NOT_FOUND")


@dataclass
class AddressBook(Aggregate):
    id: str  # adb_…
    merchant_id: str
    version: int  # 0 until first stored
    member_id: str
    addresses: list[Address] = field(default_factory=list)
    default_id: str = ""
    # (creation key, address id, fingerprint of the creation's request), oldest first; the
    # fingerprint is "" for keys stored before fingerprints were kept (replayed as before).
    keys: list[tuple[str, str, str]] = field(default_factory=list)

    @classmethod
    def empty(cls, book_id: str, merchant_id: str, member_id: str) -> "AddressBook":
        return cls(id=book_id, merchant_id=merchant_id, version=0, member_id=member_id)

    def listed(self) -> list[Address]:
        """The default first, then the newest first."""
        newest = sorted(self.addresses, key=lambda a: (a.created_at, a.id), reverse=True)
        return sorted(newest, key=lambda a: a.id != self.default_id)

    def find(self, address_id: str) -> Address:
        for address in self.addresses:
            if address.id == address_id:
                return address
        raise _not_found()

    def default(self) -> Address:
        if not self.default_id:
            raise NotFound("the member has no default address", reason="ADDRESS_NOT_FOUND")
        return self.find(self.default_id)

    def created_by(self, key: str) -> str | None:
        return next((address_id for k, address_id, _ in self.keys if k == key), None)

    def replay(self, key: str, fingerprint: str) -> Address | None:
        """The address an earlier creation with this key made, when the key was used; None
        when it was not. Refuses the key when it was used for another request."""
        for k, address_id, stored in self.keys:
            if k == key:
                if stored and stored != fingerprint:
                    raise AlreadyExists("the idempotency key was used for another address; use a new key",
                                        reason="IDEMPOTENCY_KEY_REUSED")
                return self.find(address_id)
        return None

    def add(self, address_id: str, key: str, data: AddressInput, make_default: bool, now: datetime,
            fingerprint: str = "") -> Address:
        if len(self.addresses) >= MAX_ADDRESSES:
            raise FailedPrecondition(f"an address book holds at most {MAX_ADDRESSES} addresses; delete one first",
                                     reason="ADDRESS_BOOK_FULL")
        address = Address(id=address_id, recipient=data.recipient, phone_sealed=data.phone_sealed,
                          phone_masked=data.phone_masked, region=data.region, detail=data.detail, created_at=now)
        self.addresses.append(address)
        self.keys = [*self.keys, (key, address_id, fingerprint)][-KEYS_KEPT:]
        if make_default or not self.default_id:
            self.default_id = address_id
        return address

    def edit(self, address_id: str, data: AddressInput, expected_version: int) -> Address:
        current = self.find(address_id)
        if expected_version and expected_version != current.version:
            raise Conflict(f"the address is at version {current.version}, not {expected_version}",
                          reason="VERSION_CONFLICT")
        changed = replace(current, recipient=data.recipient, region=data.region, detail=data.detail,
                          phone_sealed=data.phone_sealed or current.phone_sealed,
                          phone_masked=data.phone_masked or current.phone_masked, version=current.version + 1)
        self.addresses = [changed if a.id == address_id else a for a in self.addresses]
        return changed

    def remove(self, address_id: str) -> None:
        self.find(address_id)
        self.addresses = [a for a in self.addresses if a.id != address_id]
        if self.default_id == address_id:
            newest = max(self.addresses, key=lambda a: (a.created_at, a.id), default=None)
            self.default_id = newest.id if newest else ""

    def make_default(self, address_id: str) -> Address:
        address = self.find(address_id)
        self.default_id = address_id
        return address
