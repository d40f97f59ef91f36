"""WeChat identity use cases: login by a WeChat code (mini-program wx.login, H5 web
authorisation), phone binding (the mini-program's phone-number code, or an SMS code on
H5), and the merchant's WeChat app credentials (OWNER only).

Phone rule: a verified phone belongs to one member per merchant. Binding a phone that no
member of the merchant has yet links it to the caller; binding a phone another member
holds is refused with PHONE_TAKEN and nothing changes (two members are never merged:
either may have orders, points and addresses). Binding the caller's own phone again is a
no-op. A member whose phone is set keeps it; a different phone is refused with PHONE_BOUND.

Binding writes the phone (member_phones), then its last four digits beside the member (the
staff's search by phone suffix). A bind that stopped between the two is finished by any
later try of the member: the repeat of the same SMS code, another phone-number code (refused
with PHONE_BOUND, after writing the digits), or the same phone again.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from services.member.application.ports import (MemberRepository, PhoneBook, SmsChallenges, SmsSender, WeChatApi,
                                               WeChatApps)
from services.member.domain.admin import phone_suffix
from services.member.domain.identity import SANDBOX_PREFIX, InvalidLoginCode, ProviderIdentity
from services.member.domain.wechat import (SMS_CODE_LENGTH, SMS_CODE_TTL, SMS_RESEND_AFTER, WECHAT_CHANNELS,
                                           SmsChallenge, WeChatApp, check_app, code_hash, phone_index,
                                           valid_phone)
from siyu_kit import context
from siyu_kit.errors import AlreadyExists, FailedPrecondition, ResourceExhausted, Violations
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow

PHONE_CODE_MAX = 256


class WeChatLoginProvider:
    """The login use case's provider for one merchant's WeChat app on one channel."""
    name = "wechat"

    def __init__(self, api: WeChatApi, app: WeChatApp):
        self.api = api
        self.app = app

    async def exchange(self, code: str, channel: str) -> ProviderIdentity:
        if channel == "MINI_PROGRAM":
            return await self.api.code2session(self.app, code)
        return await self.api.web_authorise(self.app, code)


@dataclass(frozen=True)
class AppSummary:
    channel: str
    appid: str
    secret_set: bool


class WeChatIdentity:
    def __init__(self, apps: WeChatApps, api: WeChatApi, phones: PhoneBook, challenges: SmsChallenges,
                 sms: SmsSender, index_key: bytes, members: MemberRepository):
        self.members = members
        self.apps = apps
        self.api = api
        self.phones = phones
        self.challenges = challenges
        self.sms = sms
        self.index_key = index_key

    # ---- login ----------------------------------------------------------------------
    async def provider_for(self, merchant_id: str, channel: str, code: str) -> WeChatLoginProvider | None:
        """WeChat, when the merchant has a WeChat app on the channel and the code is not a
        sandbox code (those stay with the sandbox provider for the demo and tests)."""
        if channel not in WECHAT_CHANNELS or code.startswith(SANDBOX_PREFIX):
            return None
        app = await self.apps.get(merchant_id, channel)
        return WeChatLoginProvider(self.api, app) if app is not None else None

    # ---- credentials (OWNER) --------------------------------------------------------
    async def set_app(self, channel: str, appid: str, secret: str) -> AppSummary:
        ctx = context.current()
        staff_id = ctx.require_staff("OWNER")  # OWNER only: no other role is listed
        v = Violations()
        check_app(v, channel, appid, secret)
        v.raise_if_any()
        await self.apps.put(WeChatApp(ctx.merchant_id, channel, appid, secret), staff_id)
        return AppSummary(channel, appid, True)

    async def list_apps(self) -> list[AppSummary]:
        ctx = context.current()
        ctx.require_staff("OWNER")
        found = await self.apps.appids(ctx.merchant_id)
        return [AppSummary(channel, found[channel], True) if channel in found else AppSummary(channel, "", False)
                for channel in WECHAT_CHANNELS]

    # ---- phone binding --------------------------------------------------------------
    async def bind_wechat_phone(self, code: str) -> str:
        """The mini-program's phone-number code (getPhoneNumber) → the member's phone."""
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(bool(code), "code", "required")
        v.check(len(code) <= PHONE_CODE_MAX, "code", f"at most {PHONE_CODE_MAX} characters")
        v.raise_if_any()
        app = await self.apps.get(ctx.merchant_id, "MINI_PROGRAM")
        if app is None:
            raise FailedPrecondition("the merchant has no WeChat mini-program app",
                                     reason="LOGIN_PROVIDER_UNAVAILABLE")
        # Checked before WeChat is asked, so a refused binding spends no code.
        await self._check_unbound(ctx.merchant_id, member_id)
        try:
            phone = await self.api.phone_number(app, code)
        except InvalidLoginCode as error:
            v.add("code", str(error))
            v.raise_if_any("the phone-number code was not accepted")
        return await self._bind(ctx.merchant_id, member_id, phone)

    async def send_sms_code(self, phone: str) -> int:
        """Sends a code to the phone (sandbox SMS); the seconds it stays valid."""
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(valid_phone(phone), "phone", "a mainland China mobile number of 11 digits")
        v.raise_if_any()
        await self._check_unbound(ctx.merchant_id, member_id)
        index = phone_index(self.index_key, ctx.merchant_id, phone)
        now = utcnow()
        last = await self.challenges.latest(ctx.merchant_id, member_id, index)
        if last is not None and not last.used and now < last.expires_at - SMS_CODE_TTL + SMS_RESEND_AFTER:
            raise ResourceExhausted("a code was sent to this phone less than a minute ago",
                                    reason="SMS_TOO_SOON")
        code = "".join(secrets.choice("0123456789") for _ in range(SMS_CODE_LENGTH))
        challenge_id = new_id("sms")
        await self.challenges.add(SmsChallenge(challenge_id, ctx.merchant_id, member_id, index,
                                               code_hash(self.index_key, challenge_id, code), now + SMS_CODE_TTL))
        await self.sms.send(ctx.merchant_id, phone, f"验证码 {code}，{int(SMS_CODE_TTL.total_seconds()) // 60} 分钟内有效。")
        return int(SMS_CODE_TTL.total_seconds())

    async def bind_sms_phone(self, phone: str, code: str) -> str:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(valid_phone(phone), "phone", "a mainland China mobile number of 11 digits")
        v.check(len(code) == SMS_CODE_LENGTH and code.isdigit(), "code", f"{SMS_CODE_LENGTH} digits")
        v.raise_if_any()
        index = phone_index(self.index_key, ctx.merchant_id, phone)
        challenge = await self.challenges.latest(ctx.merchant_id, member_id, index)
        if challenge is None:
            v.add("code", "no code was sent to this phone")
            v.raise_if_any("the SMS code was not accepted")
        given = code_hash(self.index_key, challenge.id, code)
        now = utcnow()
        why = challenge.try_code(given, now)
        await self.challenges.save(challenge)
        if why == "USED" and challenge.repeated_by(given, now):
            # The repeat of a bind whose code was accepted: finish what it left undone.
            return await self._bind(ctx.merchant_id, member_id, phone)
        if why == "TOO_MANY_ATTEMPTS":
            raise ResourceExhausted("too many wrong codes; ask for a new one", reason="SMS_CODE_LOCKED")
        if why:
            v.add("code", {"WRONG": "wrong code", "EXPIRED": "the code has expired",
                           "USED": "the code was used already"}[why])
            v.raise_if_any("the SMS code was not accepted")
        return await self._bind(ctx.merchant_id, member_id, phone)

    async def _check_unbound(self, merchant_id: str, member_id: str) -> None:
        bound = await self.phones.phone_of(merchant_id, member_id)
        if bound:
            await self._write_suffix(merchant_id, member_id, bound)
            raise FailedPrecondition("the member has a verified phone already", reason="PHONE_BOUND")

    async def _write_suffix(self, merchant_id: str, member_id: str, phone: str) -> None:
        """The phone's last four digits beside the member, for the staff's search; also
        finishes a bind that stopped after the phone was written."""
        await self.members.set_phone_suffix(merchant_id, member_id, phone_suffix(phone))

    async def _bind(self, merchant_id: str, member_id: str, phone: str) -> str:
        holder = await self.phones.member_of(merchant_id, phone)
        if holder == member_id:
            await self._write_suffix(merchant_id, member_id, phone)
            return phone
        if holder is not None:
            raise AlreadyExists("the phone belongs to another member", reason="PHONE_TAKEN")
        await self._check_unbound(merchant_id, member_id)
        if not await self.phones.bind(merchant_id, phone, member_id):
            # lost a race: to another member for this phone, or to another phone of this member
            holder = await self.phones.member_of(merchant_id, phone)
            if holder is None:
                await self._check_unbound(merchant_id, member_id)
            if holder != member_id:
                raise AlreadyExists("the phone belongs to another member", reason="PHONE_TAKEN")
        await self._write_suffix(merchant_id, member_id, phone)
        return phone
