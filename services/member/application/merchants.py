"""Operator tooling and the gateway's key look-up: merchants, channel keys, staff users."""
from __future__ import annotations

from siyu_kit import retry
from siyu_kit.context import CHANNELS, ROLES
from siyu_kit.errors import AlreadyExists, NotFound, Unauthenticated, Violations
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow

from services.member.application.ports import (ApiKeyRepository, MerchantRepository, PasswordHasher,
                                               StaffRepository)
from services.member.domain import merchants as rules
from services.member.domain.config import DEFAULT_TIME_ZONE, MerchantConfig
from services.member.domain.merchants import ApiKey, Merchant, StaffUser
from services.member.domain.passwords import MIN_LENGTH

UNKNOWN_KEY = "unknown channel key"


async def merchant_config(merchants: MerchantRepository, merchant_id: str) -> MerchantConfig:
    """The merchant's own config; the domain defaults for a merchant not set up here."""
    merchant = await merchants.get(merchant_id)
    return merchant.config if merchant else MerchantConfig()


class MerchantAdmin:
    def __init__(self, merchants: MerchantRepository, api_keys: ApiKeyRepository, staff: StaffRepository,
                 passwords: PasswordHasher):
        self.merchants = merchants
        self.api_keys = api_keys
        self.staff = staff
        self.passwords = passwords

    async def upsert_merchant(self, code: str, name: str, time_zone: str) -> tuple[Merchant, bool]:
        v = Violations()
        v.check(bool(rules.CODE.match(code)), "code", "2..40 characters of a-z, 0-9 and -")
        v.check(0 < len(name.strip()) <= rules.NAME_MAX, "name", f"required, at most {rules.NAME_MAX} characters")
        time_zone = time_zone or DEFAULT_TIME_ZONE
        v.check(rules.valid_time_zone(time_zone), "time_zone", "an IANA time zone such as Asia/Shanghai")
        v.raise_if_any()
        name = name.strip()
        now = utcnow()
        merchant = Merchant.create(new_id("mch"), code, name, time_zone, now)
        if await self.merchants.add(merchant):
            return merchant, True

        async def attempt() -> tuple[Merchant, bool]:
            existing = await self.merchants.by_code(code)
            if existing.rename(name, time_zone, now):
                await self.merchants.save(existing)
            return existing, False

        return await retry.on_conflict(attempt, gave_up="the merchant changed concurrently; try again")

    async def upsert_api_key(self, merchant_id: str, channel: str, api_key: str) -> bool:
        """Binds a key to a merchant's channel. The same binding again is a no-op; a key bound
        elsewhere is refused, so a key can never silently move between merchants."""
        v = Violations()
        v.check(bool(merchant_id), "merchant_id", "required")
        v.check(channel in CHANNELS, "channel", "one of " + ", ".join(CHANNELS))
        v.check(bool(rules.API_KEY.match(api_key)), "api_key", "16..128 printable characters without spaces")
        v.raise_if_any()
        if await self.merchants.get(merchant_id) is None:
            raise NotFound("no such merchant")
        key = ApiKey(new_id("key"), merchant_id, channel, rules.key_hash(api_key), utcnow(),
                     api_key[:6], api_key[-4:])
        if await self.api_keys.add(key):
            return True
        existing = await self.api_keys.by_hash(key.key_hash)
        if existing.merchant_id == merchant_id and existing.channel == channel:
            return False
        raise AlreadyExists("the key is bound to another merchant or channel", reason="API_KEY_TAKEN")

    async def resolve_api_key(self, api_key: str) -> tuple[str, str]:
        v = Violations()
        v.check(bool(api_key), "api_key", "required")
        v.raise_if_any()
        key = await self.api_keys.by_hash(rules.key_hash(api_key))
        if key is None or key.disabled:
            raise Unauthenticated(UNKNOWN_KEY, reason="UNKNOWN_API_KEY")
        return key.merchant_id, key.channel

    async def upsert_staff_user(self, merchant_id: str, username: str, password: str, roles: list[str],
                                disabled: bool = False) -> tuple[str, bool]:
        """Creates or changes a staff user. A change ends the user's tokens at once (their
        token version moves), so a demoted, re-passworded or disabled user must log in again."""
        v = Violations()
        v.check(bool(merchant_id), "merchant_id", "required")
        v.check(bool(rules.USERNAME.match(username)), "username", "2..64 characters of A-Z a-z 0-9 _ . @ -")
        v.check(MIN_LENGTH <= len(password) <= 256, "password", f"{MIN_LENGTH}..256 characters")
        v.check(bool(roles) and all(r in ROLES for r in roles), "roles", "at least one of " + ", ".join(ROLES))
        v.raise_if_any()
        if await self.merchants.get(merchant_id) is None:
            raise NotFound("no such merchant")
        wanted = tuple(sorted(set(roles), key=ROLES.index))
        password_hash = await self.passwords.hash(password)
        now = utcnow()
        staff = StaffUser.create(new_id("stf"), merchant_id, username, password_hash, wanted, bool(disabled), now)
        if await self.staff.add(staff):
            return staff.id, True

        async def attempt() -> tuple[str, bool]:
            existing = await self.staff.by_username(merchant_id, username)
            existing.change(password_hash, wanted, bool(disabled), now)
            await self.staff.save(existing)
            return existing.id, False

        return await retry.on_conflict(attempt, gave_up="the staff user changed concurrently; try again")
