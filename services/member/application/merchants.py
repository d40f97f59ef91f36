"""Operator tooling and the gateway's key look-up: merchants, channel keys, staff users."""
from __future__ import annotations

from dataclasses import dataclass

from pymongo.errors import DuplicateKeyError

from services.member.adapters import repositories as repo
from services.member.domain import merchants as rules
from services.member.domain.config import DEFAULT_TIME_ZONE, MerchantConfig
from services.member.domain.passwords import MIN_LENGTH, hash_password
from siyu_kit.context import CHANNELS, ROLES
from siyu_kit.db import run_sync
from siyu_kit.errors import AlreadyExists, Conflict, NotFound, Unauthenticated, Violations
from siyu_kit.ids import new_id
from siyu_kit.protos import epoch_ms, utcnow

UNKNOWN_KEY = "unknown channel key"


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    code: str
    name: str
    time_zone: str


def _merchant(doc: dict) -> Merchant:
    return Merchant(doc["_id"], doc["code"], doc["name"], doc["time_zone"])


async def merchant_config(merchant_id: str) -> MerchantConfig:
    """The merchant's own config; the domain defaults for a merchant not set up here."""
    doc = await run_sync(repo.find_merchant, merchant_id)
    return MerchantConfig.from_doc(doc.get("config") if doc else None)


async def upsert_merchant(code: str, name: str, time_zone: str) -> tuple[Merchant, bool]:
    v = Violations()
    v.check(bool(rules.CODE.match(code)), "code", "2..40 characters of a-z, 0-9 and -")
    v.check(0 < len(name.strip()) <= rules.NAME_MAX, "name", f"required, at most {rules.NAME_MAX} characters")
    time_zone = time_zone or DEFAULT_TIME_ZONE
    v.check(rules.valid_time_zone(time_zone), "time_zone", "an IANA time zone such as Asia/Shanghai")
    v.raise_if_any()
    name = name.strip()
    now = utcnow()
    merchant_id = new_id("mch")
    doc = {"_id": merchant_id, "merchant_id": merchant_id, "code": code, "name": name, "time_zone": time_zone,
           "config": MerchantConfig().to_doc(), "version": 1, "created_at": now, "updated_ms": epoch_ms(now)}
    try:
        await run_sync(repo.insert_merchant, doc)
        return _merchant(doc), True
    except DuplicateKeyError:
        pass
    for _ in range(3):
        existing = await run_sync(repo.find_merchant_by_code, code)
        if existing["name"] == name and existing["time_zone"] == time_zone:
            return _merchant(existing), False
        if await run_sync(repo.update_merchant, existing["_id"], existing["version"], name, time_zone, now):
            return Merchant(existing["_id"], code, name, time_zone), False
    raise Conflict("the merchant changed concurrently; try again")


async def upsert_api_key(merchant_id: str, channel: str, api_key: str) -> bool:
    """Binds a key to a merchant's channel. The same binding again is a no-op; a key bound
    elsewhere is refused, so a key can never silently move between merchants."""
    v = Violations()
    v.check(bool(merchant_id), "merchant_id", "required")
    v.check(channel in CHANNELS, "channel", "one of " + ", ".join(CHANNELS))
    v.check(bool(rules.API_KEY.match(api_key)), "api_key", "16..128 printable characters without spaces")
    v.raise_if_any()
    if await run_sync(repo.find_merchant, merchant_id) is None:
        raise NotFound("no such merchant")
    key_hash = rules.key_hash(api_key)
    doc = {"_id": new_id("key"), "merchant_id": merchant_id, "channel": channel, "key_hash": key_hash,
           "created_at": utcnow()}
    try:
        await run_sync(repo.insert_api_key, doc)
        return True
    except DuplicateKeyError:
        existing = await run_sync(repo.find_api_key, key_hash)
    if existing["merchant_id"] == merchant_id and existing["channel"] == channel:
        return False
    raise AlreadyExists("the key is bound to another merchant or channel", reason="API_KEY_TAKEN")


async def resolve_api_key(api_key: str) -> tuple[str, str]:
    v = Violations()
    v.check(bool(api_key), "api_key", "required")
    v.raise_if_any()
    doc = await run_sync(repo.find_api_key, rules.key_hash(api_key))
    if doc is None:
        raise Unauthenticated(UNKNOWN_KEY, reason="UNKNOWN_API_KEY")
    return doc["merchant_id"], doc["channel"]


async def upsert_staff_user(merchant_id: str, username: str, password: str, roles: list[str],
                            disabled: bool = False) -> tuple[str, bool]:
    """Creates or changes a staff user. A change ends the user's tokens at once (their
    token version moves), so a demoted, re-passworded or disabled user must log in again."""
    v = Violations()
    v.check(bool(merchant_id), "merchant_id", "required")
    v.check(bool(rules.USERNAME.match(username)), "username", "2..64 characters of A-Z a-z 0-9 _ . @ -")
    v.check(MIN_LENGTH <= len(password) <= 256, "password", f"{MIN_LENGTH}..256 characters")
    v.check(bool(roles) and all(r in ROLES for r in roles), "roles", "at least one of " + ", ".join(ROLES))
    v.raise_if_any()
    if await run_sync(repo.find_merchant, merchant_id) is None:
        raise NotFound("no such merchant")
    roles = sorted(set(roles), key=ROLES.index)
    password_hash = await run_sync(hash_password, password)
    now = utcnow()
    staff_id = new_id("stf")
    doc = {"_id": staff_id, "merchant_id": merchant_id, "username": username, "password_hash": password_hash,
           "roles": roles, "disabled": int(disabled), "token_version": 1, "version": 1, "created_at": now,
           "updated_ms": epoch_ms(now)}
    try:
        await run_sync(repo.insert_staff, doc)
        return staff_id, True
    except DuplicateKeyError:
        pass
    for _ in range(3):
        existing = await run_sync(repo.find_staff, merchant_id, username)
        if await run_sync(repo.update_staff, merchant_id, existing["_id"], existing["version"], password_hash,
                          roles, int(disabled), now):
            return existing["_id"], False
    raise Conflict("the staff user changed concurrently; try again")
