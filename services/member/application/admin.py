"""Staff administration and platform onboarding: staff users and channel keys (OWNER),
the audit trail of every change, tier configuration (OWNER or OPERATOR), a member's own
tier standing, and the platform operator opening a merchant."""
from __future__ import annotations

from dataclasses import dataclass

from siyu_kit import context, paging, retry
from siyu_kit.context import CHANNELS, ROLES
from siyu_kit.errors import AlreadyExists, Conflict, FailedPrecondition, NotFound, Violations
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow

from services.member.application.ports import (ApiKeyRepository, AuditLog, MemberDirectory, MerchantRepository,
                                               PasswordHasher, PhoneBook, PointsLedger, StaffRepository)
from services.member.application.profile_ports import CouponTemplateLookup
from services.member.application.views import MemberView
from services.member.domain import tiers
from services.member.domain import admin as rules
from services.member.domain import merchants as merchant_rules
from services.member.domain.admin import AuditEntry, TierLevel, TierStanding
from services.member.domain.config import DEFAULT_TIME_ZONE, TIERS, MerchantConfig
from services.member.domain.merchants import ApiKey, Merchant, StaffUser
from services.member.domain.passwords import MIN_LENGTH


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    api_key: str  # shown once


@dataclass(frozen=True)
class TierSettings:
    levels: list[TierLevel]
    version: int


@dataclass(frozen=True)
class Onboarded:
    merchant: Merchant
    owner_id: str
    keys: list[IssuedKey]


def _roles(v: Violations, roles: list[str]) -> tuple[str, ...]:
    v.check(bool(roles) and all(r in ROLES for r in roles), "roles", "at least one of " + ", ".join(ROLES))
    return tuple(sorted(set(r for r in roles if r in ROLES), key=ROLES.index))


def _password(v: Violations, password: str, name: str) -> None:
    v.check(MIN_LENGTH <= len(password) <= 256, name, f"{MIN_LENGTH}..256 characters")


class StaffAdmin:
    def __init__(self, merchants: MerchantRepository, api_keys: ApiKeyRepository, staff: StaffRepository,
                 passwords: PasswordHasher, audit: AuditLog, ledger: PointsLedger,
                 directory: MemberDirectory | None = None, phones: PhoneBook | None = None,
                 coupon_templates: CouponTemplateLookup | None = None):
        self.phones = phones
        # Birthday coupons named in the tier configuration must be the merchant's templates.
        self.coupon_templates = coupon_templates
        self.merchants = merchants
        self.api_keys = api_keys
        self.staff = staff
        self.passwords = passwords
        self.audit = audit
        self.ledger = ledger
        self.directory = directory

    # ---- the audit trail ----------------------------------------------------------------
    async def _audit(self, merchant_id: str, action: str, target_id: str, before: dict[str, str] | None = None,
                     after: dict[str, str] | None = None) -> None:
        ctx = context.current()
        await self.audit.add(AuditEntry(new_id("aud"), merchant_id, ctx.caller_kind, ctx.caller_id, action,
                                        target_id, dict(before or {}), dict(after or {}), utcnow()))

    async def list_audit(self, action: str, actor_id: str, target_id: str, page_size: int,
                         page_token: str) -> tuple[list[AuditEntry], str]:
        ctx = context.current()
        ctx.require_staff("OWNER")
        v = Violations()
        v.check(not action or action in rules.ACTIONS, "action", "one of " + ", ".join(rules.ACTIONS))
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="audit", action=action, actor_id=actor_id, target_id=target_id)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        rows = await self.audit.page(ctx.merchant_id, action, actor_id, target_id, after, size + 1)
        return _paged(rows, size, fp)

    # ---- staff users ----------------------------------------------------------------------
    async def list_staff(self, username_prefix: str, include_disabled: bool, page_size: int,
                         page_token: str) -> tuple[list[StaffUser], str]:
        ctx = context.current()
        ctx.require_staff("OWNER")
        v = Violations()
        v.check(len(username_prefix) <= 64, "username_prefix", "at most 64 characters")
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="staff", prefix=username_prefix, disabled=include_disabled)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        rows = await self.staff.page(ctx.merchant_id, username_prefix, include_disabled, after, size + 1)
        return _paged(rows, size, fp)

    async def create_staff(self, username: str, password: str, roles: list[str]) -> StaffUser:
        ctx = context.current()
        ctx.require_staff("OWNER")
        return await self._create_staff(ctx.merchant_id, username, password, roles)

    async def _create_staff(self, merchant_id: str, username: str, password: str, roles: list[str],
                            password_field: str = "password", username_field: str = "username") -> StaffUser:
        v = Violations()
        v.check(bool(merchant_rules.USERNAME.match(username)), username_field,
                "2..64 characters of A-Z a-z 0-9 _ . @ -")
        _password(v, password, password_field)
        wanted = _roles(v, roles)
        v.raise_if_any()
        now = utcnow()
        staff = StaffUser.create(new_id("stf"), merchant_id, username, await self.passwords.hash(password), wanted,
                                 False, now)
        if not await self.staff.add(staff):
            raise AlreadyExists("a staff user of that name exists", reason="STAFF_USERNAME_TAKEN")
        await self._audit(merchant_id, rules.STAFF_USER_CREATED, staff.id,
                          after=rules.staff_summary(staff.username, staff.roles, staff.disabled))
        return staff

    async def _change_staff(self, staff_id: str, change, action: str, gave_up: str) -> StaffUser:
        ctx = context.current()
        ctx.require_staff("OWNER")
        v = Violations()
        v.check(rules.is_id(staff_id, "stf"), "staff_id", "a stf_ id")
        v.raise_if_any()
        if staff_id == ctx.caller_id:
            raise FailedPrecondition("change your own account through the login screen", reason="STAFF_SELF_CHANGE")

        async def attempt() -> tuple[StaffUser, dict[str, str]]:
            staff = await self.staff.get(ctx.merchant_id, staff_id)
            if staff is None:
                raise NotFound("no such staff user")
            before = rules.staff_summary(staff.username, staff.roles, staff.disabled)
            await change(staff)
            await self.staff.save(staff)
            return staff, before

        staff, before = await retry.on_conflict(attempt, gave_up=gave_up)
        await self._audit(ctx.merchant_id, action, staff.id, before,
                          rules.staff_summary(staff.username, staff.roles, staff.disabled))
        return staff

    async def set_staff_disabled(self, staff_id: str, disabled: bool) -> StaffUser:
        """Disabling moves the user's token version: their tokens stop within seconds."""
        async def change(staff: StaffUser) -> None:
            staff.change(staff.password_hash, staff.roles, bool(disabled), utcnow())

        action = rules.STAFF_USER_DISABLED if disabled else rules.STAFF_USER_ENABLED
        return await self._change_staff(staff_id, change, action, "the staff user changed concurrently; try again")

    async def rotate_staff_password(self, staff_id: str, new_password: str) -> StaffUser:
        v = Violations()
        _password(v, new_password, "new_password")
        v.raise_if_any()
        password_hash = await self.passwords.hash(new_password)

        async def change(staff: StaffUser) -> None:
            staff.change(password_hash, staff.roles, staff.disabled, utcnow())

        return await self._change_staff(staff_id, change, rules.STAFF_PASSWORD_ROTATED,
                                        "the staff user changed concurrently; try again")

    # ---- channel keys ---------------------------------------------------------------------
    async def list_keys(self, channel: str, include_disabled: bool, page_size: int,
                        page_token: str) -> tuple[list[ApiKey], str]:
        ctx = context.current()
        ctx.require_staff("OWNER")
        v = Violations()
        v.check(not channel or channel in CHANNELS, "channel", "one of " + ", ".join(CHANNELS))
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="keys", channel=channel, disabled=include_disabled)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        rows = await self.api_keys.page(ctx.merchant_id, channel, include_disabled, after, size + 1)
        return _paged(rows, size, fp)

    async def create_key(self, channel: str) -> IssuedKey:
        ctx = context.current()
        ctx.require_staff("OWNER")
        return await self._create_key(ctx.merchant_id, channel)

    async def _create_key(self, merchant_id: str, channel: str, action: str = rules.API_KEY_CREATED,
                          before: dict[str, str] | None = None, field: str = "channel") -> IssuedKey:
        v = Violations()
        v.check(channel in CHANNELS, field, "one of " + ", ".join(CHANNELS))
        v.raise_if_any()
        while True:
            api_key = rules.new_api_key(channel)
            prefix, last4 = rules.key_hint(api_key)
            key = ApiKey(new_id("key"), merchant_id, channel, merchant_rules.key_hash(api_key), utcnow(),
                         prefix, last4)
            if await self.api_keys.add(key):
                break
        if action:
            await self._audit(merchant_id, action, key.id, before,
                              rules.key_summary(channel, prefix, last4, False))
        return IssuedKey(key, api_key)

    async def _my_key(self, key_id: str) -> ApiKey:
        ctx = context.current()
        ctx.require_staff("OWNER")
        v = Violations()
        v.check(rules.is_id(key_id, "key"), "key_id", "a key_ id")
        v.raise_if_any()
        key = await self.api_keys.get(ctx.merchant_id, key_id)
        if key is None:
            raise NotFound("no such channel key")
        return key

    async def disable_key(self, key_id: str) -> ApiKey:
        key = await self._my_key(key_id)
        if await self.api_keys.disable(key.merchant_id, key.id):
            await self._audit(key.merchant_id, rules.API_KEY_DISABLED, key.id,
                              rules.key_summary(key.channel, key.prefix, key.last4, False),
                              rules.key_summary(key.channel, key.prefix, key.last4, True))
        return await self.api_keys.get(key.merchant_id, key.id)

    async def rotate_key(self, key_id: str) -> tuple[IssuedKey, str]:
        """A new key of the same channel; the old one disabled after it exists, so the
        channel is never without a key."""
        key = await self._my_key(key_id)
        if key.disabled:
            raise FailedPrecondition("the channel key is disabled", reason="API_KEY_DISABLED")
        issued = await self._create_key(key.merchant_id, key.channel, rules.API_KEY_ROTATED,
                                        rules.key_summary(key.channel, key.prefix, key.last4, False) |
                                        {"replaces": key.id})
        await self.api_keys.disable(key.merchant_id, key.id)
        return issued, key.id

    # ---- tiers -------------------------------------------------------------------------------
    async def tier_config(self) -> TierSettings:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        merchant = await self._merchant(ctx.merchant_id)
        return TierSettings(rules.levels_of(merchant.config), merchant.version)

    async def update_tier_config(self, levels: list[TierLevel], expected_version: int) -> TierSettings:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        rules.check_levels(levels)
        v = Violations()
        v.check(expected_version >= 1, "expected_version", "the version read with GetTierConfig")
        for i, level in enumerate(levels):
            if level.birthday_coupon_template_id and self.coupon_templates is not None:
                v.check(await self.coupon_templates.get(ctx.merchant_id, level.birthday_coupon_template_id)
                        is not None, f"levels[{i}].birthday_coupon_template_id", "no coupon template of the merchant")
        v.raise_if_any()

        async def attempt() -> tuple[Merchant, MerchantConfig]:
            merchant = await self._merchant(ctx.merchant_id)
            if merchant.version != expected_version:
                raise Conflict("the tier configuration changed since it was read; read it again",
                               reason="VERSION_CONFLICT")
            before = merchant.config
            merchant.reconfigure(rules.with_levels(merchant.config, levels), utcnow())
            await self.merchants.save(merchant)
            return merchant, before

        merchant, before = await retry.on_conflict(attempt, gave_up="the tier configuration changed; try again")
        await self._audit(ctx.merchant_id, rules.TIER_CONFIG_UPDATED, rules.TIER_CONFIG_TARGET,
                          rules.tier_summary(before), rules.tier_summary(merchant.config))
        return TierSettings(rules.levels_of(merchant.config), merchant.version)

    async def my_tier(self) -> TierStanding:
        ctx = context.current()
        member_id = ctx.require_member()
        merchant = await self.merchants.get(ctx.merchant_id)
        config = merchant.config if merchant else MerchantConfig()
        account = await self.ledger.account(ctx.merchant_id, member_id)
        return rules.standing(account.growth, config)

    async def _merchant(self, merchant_id: str) -> Merchant:
        merchant = await self.merchants.get(merchant_id)
        if merchant is None:
            raise NotFound("no such merchant")
        return merchant

    # ---- the member directory ----------------------------------------------------------------
    async def list_members(self, phone_suffix: str, nickname_prefix: str, tier: str, registered_from,
                           registered_before, page_size: int, page_token: str) -> tuple[list[MemberView], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "GUIDE")
        v = Violations()
        v.check(not phone_suffix or bool(rules.PHONE_SUFFIX.match(phone_suffix)), "phone_suffix", "four digits")
        v.check(len(nickname_prefix) <= 64, "nickname_prefix", "at most 64 characters")
        v.check(not tier or tier in TIERS, "tier", "one of " + ", ".join(TIERS))
        if registered_from and registered_before:
            v.check(registered_from < registered_before, "registered_before", "after registered_from")
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="members", phone=phone_suffix, nick=nickname_prefix, tier=tier,
                               since=registered_from, until=registered_before)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        merchant = await self.merchants.get(ctx.merchant_id)
        config = merchant.config if merchant else MerchantConfig()
        low, high = rules.growth_range(tier, config) if tier else (None, None)
        where = rules.MemberFilter(phone_suffix, nickname_prefix, low, high, registered_from, registered_before)
        rows = await self.directory.page(ctx.merchant_id, where, after, size + 1)
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            token = paging.encode_cursor(fp, rows[-1][0].id)
        # The verified phones of the page, in one read (shown masked).
        phones = await self.phones.phones_of(ctx.merchant_id, [m.id for m, _ in rows]) if self.phones and rows \
            else {}
        return [MemberView(m.id, m.nickname, m.avatar_url, m.phone or phones.get(m.id, ""),
                           tiers.tier_for(growth, config), growth, m.created_at, ()) for m, growth in rows], token

    # ---- the platform operator -------------------------------------------------------------
    async def onboard(self, code: str, name: str, time_zone: str, owner_username: str, owner_password: str,
                      channels: list[str]) -> Onboarded:
        """Opens a merchant with its first OWNER and a key per channel. Everything is checked
        before anything is written; a taken code writes nothing."""
        context.current().require_platform()
        v = Violations()
        v.check(bool(merchant_rules.CODE.match(code)), "code", "2..40 characters of a-z, 0-9 and -")
        v.check(0 < len(name.strip()) <= merchant_rules.NAME_MAX, "name",
                f"required, at most {merchant_rules.NAME_MAX} characters")
        time_zone = time_zone or DEFAULT_TIME_ZONE
        v.check(merchant_rules.valid_time_zone(time_zone), "time_zone", "an IANA time zone such as Asia/Shanghai")
        v.check(bool(merchant_rules.USERNAME.match(owner_username)), "owner_username",
                "2..64 characters of A-Z a-z 0-9 _ . @ -")
        _password(v, owner_password, "owner_password")
        v.check(all(c in CHANNELS for c in channels), "channels", "each one of " + ", ".join(CHANNELS))
        v.check(len(set(channels)) == len(channels), "channels", "each channel once")
        v.raise_if_any()
        now = utcnow()
        merchant = Merchant.create(new_id("mch"), code, name.strip(), time_zone, now)
        if not await self.merchants.add(merchant):
            raise AlreadyExists("a merchant with that code exists", reason="MERCHANT_CODE_TAKEN")
        await self._audit(merchant.id, rules.MERCHANT_ONBOARDED, merchant.id,
                          after={"code": code, "name": merchant.name, "time_zone": time_zone})
        owner = await self._create_staff(merchant.id, owner_username, owner_password, ["OWNER"],
                                         password_field="owner_password", username_field="owner_username")
        keys = [await self._create_key(merchant.id, channel) for channel in channels]
        return Onboarded(merchant, owner.id, keys)


def _paged(rows: list, size: int, fp: str) -> tuple[list, str]:
    if len(rows) > size:
        rows = rows[:size]
        return rows, paging.encode_cursor(fp, rows[-1].id)
    return rows, ""
