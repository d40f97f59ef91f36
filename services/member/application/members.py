"""Member login across channels, tokens, the member centre (me, points)."""
from __future__ import annotations

from dataclasses import dataclass

from services.member.application.merchants import merchant_config
from services.member.application.referral import Referrals
from services.member.application.ports import (IdentityRepository, LoginProvider, MemberRepository,
                                               MerchantRepository, PhoneBook, PointsLedger)
from services.member.application.sessions import Sessions
from services.member.application.views import MemberView
from services.member.application.wechat import WeChatIdentity
from services.member.domain import tiers
from services.member.domain.config import MerchantConfig
from services.member.domain.identity import InvalidLoginCode, ProviderIdentity
from services.member.domain.members import Member
from services.member.domain.wechat import WECHAT_CHANNELS
from siyu_kit import auth, context
from siyu_kit.context import CHANNELS
from siyu_kit.errors import FailedPrecondition, NotFound, Unauthenticated, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import utcnow

NICKNAME_MAX = 64


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class LoginResult:
    tokens: Tokens
    member: MemberView
    created: bool
    # ---- referral: what became of the login's invite code ("" without one) ----
    referral: str = ""


class Members:
    def __init__(self, sessions: Sessions, providers: dict[str, LoginProvider], members: MemberRepository,
                 identities: IdentityRepository, merchants: MerchantRepository, ledger: PointsLedger,
                 wechat: WeChatIdentity | None = None, phones: PhoneBook | None = None,
                 referrals: Referrals | None = None):
        self.sessions = sessions
        # ---- referral: a new member's invite code binds at registration ----
        self.referrals = referrals
        # WeChat login where the merchant has a WeChat app on the channel; verified phones
        self.wechat = wechat
        self.phones = phones
        self.providers = providers
        self.members = members
        self.identities = identities
        self.merchants = merchants
        self.ledger = ledger

    async def _tokens(self, merchant_id: str, member_id: str, version: int | None = None) -> Tokens:
        if version is None:
            version = (await self.sessions.subject(merchant_id, member_id)).version
        issued = await self.sessions.issue(merchant_id, member_id, version)
        return Tokens(issued.access_token, issued.refresh_token, issued.expires_in)

    async def login(self, code: str, nickname: str, invite_code: str = "") -> LoginResult:
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        # The channel is the API key's, never the body's.
        if ctx.channel not in CHANNELS:
            raise Unauthenticated("a channel API key is required")
        v = Violations()
        v.check(bool(code), "code", "required")
        v.check(len(nickname) <= NICKNAME_MAX, "nickname", f"at most {NICKNAME_MAX} characters")
        v.raise_if_any()
        config = await merchant_config(self.merchants, merchant_id)
        provider = self.providers.get(config.provider_for(ctx.channel))
        if self.wechat is not None:
            provider = await self.wechat.provider_for(merchant_id, ctx.channel, code) or provider
        if provider is None:
            raise FailedPrecondition("login is not available on this channel", reason="LOGIN_PROVIDER_UNAVAILABLE")
        try:
            identity = await provider.exchange(code, ctx.channel)
        except InvalidLoginCode as error:
            v.add("code", str(error))
            v.raise_if_any("the login code was not accepted")
        member_id, created = await self._link(merchant_id, ctx.channel, identity, nickname.strip())
        # ---- referral: only the login that created the member binds it ----
        referral = ""
        if self.referrals is not None and invite_code:
            referral = await self.referrals.at_registration(merchant_id, member_id, invite_code, identity.unionid,
                                                            created)
        member = await self._view(merchant_id, member_id, config)
        return LoginResult(await self._tokens(merchant_id, member_id), member, created, referral)

    async def _link(self, merchant_id: str, channel: str, identity: ProviderIdentity,
                    nickname: str) -> tuple[str, bool]:
        """The member of this identity, creating it on first contact. Safe under races:
        unique links decide the winner and every loser reads and uses it. An identity still
        pointing at a member being erased (the instant before erasure deletes it) is taken
        over by a new member, by a conditional update on the old member id, as if absent."""
        member_id = await self.identities.member_of_channel(merchant_id, channel, identity.openid)
        if member_id is not None and not await self._erasing(merchant_id, member_id):
            return member_id, await self._ensure_member(merchant_id, member_id, channel, nickname)
        erased_channel = member_id
        member_id = await self.identities.member_of_union(merchant_id, identity.unionid)
        if member_id is not None and await self._erasing(merchant_id, member_id):
            fresh = new_id("mem")
            taken = await self.identities.take_over_union(merchant_id, identity.unionid, member_id, fresh)
            member_id = fresh if taken else await self.identities.member_of_union(merchant_id, identity.unionid)
        if member_id is None:
            member_id = new_id("mem")
            if not await self.identities.link_union(merchant_id, identity.unionid, member_id):
                member_id = await self.identities.member_of_union(merchant_id, identity.unionid)
        # Also heals a unionid whose first login died before the member was written.
        created = await self._ensure_member(merchant_id, member_id, channel, nickname)
        if erased_channel is not None:
            linked = await self.identities.take_over_channel(merchant_id, channel, identity.openid, erased_channel,
                                                             member_id)
        else:
            linked = await self.identities.link_channel(merchant_id, channel, identity.openid, member_id)
        if not linked:
            member_id = await self.identities.member_of_channel(merchant_id, channel, identity.openid) or member_id
        return member_id, created

    async def _erasing(self, merchant_id: str, member_id: str) -> bool:
        """Whether the member is being (or was) erased: their identities count as absent."""
        subject = await self.members.subject(merchant_id, member_id)
        return subject is not None and not subject.active

    async def _ensure_member(self, merchant_id: str, member_id: str, channel: str, nickname: str) -> bool:
        if await self.members.get(merchant_id, member_id) is not None:
            return False
        return await self.members.add(Member.register(member_id, merchant_id, channel, nickname, utcnow()))

    async def _view(self, merchant_id: str, member_id: str, config: MerchantConfig | None = None) -> MemberView:
        member = await self.members.get(merchant_id, member_id)
        if member is None:
            raise NotFound("no such member")
        config = config or await merchant_config(self.merchants, merchant_id)
        growth = (await self.ledger.account(merchant_id, member_id)).growth
        channels = await self.identities.channels_of(merchant_id, member_id)
        phone = member.phone or (await self.phones.phone_of(merchant_id, member_id) if self.phones else "")
        return MemberView(member_id, member.nickname, member.avatar_url, phone,
                          tiers.tier_for(growth, config), growth, member.created_at, tuple(channels))

    async def refresh(self, refresh_token: str) -> Tokens:
        merchant_id = context.current().require_merchant()
        v = Violations()
        v.check(bool(refresh_token), "refresh_token", "required")
        v.raise_if_any()
        # A member that no longer exists is inactive: its tokens are refused as revoked.
        claims, subject = await self.sessions.redeem(refresh_token, auth.REFRESH, merchant_id)
        return await self._tokens(merchant_id, claims.subject, subject.version)

    async def logout(self, refresh_token: str) -> None:
        ctx = context.current()
        member_id = ctx.require_member()
        await self.sessions.logout(ctx.merchant_id, member_id, refresh_token, auth.REFRESH)

    async def me(self) -> MemberView:
        ctx = context.current()
        member_id = ctx.require_member()
        return await self._view(ctx.merchant_id, member_id)

    async def wechat_openid(self, member_id: str, channel: str) -> str:
        """The order service's read of the payer of a WeChat payment: the member's openid in
        the channel, among the calling merchant's members only."""
        merchant_id = context.current().require_merchant()
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "must be a mem_ id")
        v.check(channel in WECHAT_CHANNELS, "channel", "MINI_PROGRAM or H5")
        v.raise_if_any()
        openid = await self.identities.openid_of(merchant_id, member_id, channel)
        if openid is None:
            raise NotFound(f"the member has no WeChat identity on {channel}", reason="NO_WECHAT_IDENTITY")
        return openid
