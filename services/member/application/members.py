"""Member login across channels, tokens, the member centre (me, points)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pymongo.errors import DuplicateKeyError
from siyu.member.v1 import events_pb2

from services.member.adapters import repositories as repo
from services.member.application.merchants import merchant_config
from services.member.application.sessions import Sessions
from services.member.application.views import MemberView, member_proto
from services.member.domain import tiers
from services.member.domain.identity import IdentityProvider, InvalidLoginCode, ProviderIdentity
from services.member.domain.points import Balance, balance_of
from siyu_kit import auth, context
from siyu_kit.context import CHANNELS
from siyu_kit.db import run_sync
from siyu_kit.errors import FailedPrecondition, NotFound, Unauthenticated, Violations
from siyu_kit.events import outbox
from siyu_kit.events.streams import subject_of
from siyu_kit.ids import new_id
from siyu_kit.protos import utcnow

REGISTERED = subject_of("member", "member", "registered")
NICKNAME_MAX = 64
ENTRIES_SHOWN = 100


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


@dataclass(frozen=True)
class Points:
    balance: Balance
    entries: list[dict]


class Members:
    def __init__(self, sessions: Sessions, providers: dict[str, IdentityProvider], committed: Callable[[], None]):
        self.sessions = sessions
        self.providers = providers
        self.committed = committed

    async def _tokens(self, merchant_id: str, member_id: str, version: int | None = None) -> Tokens:
        if version is None:
            version = (await self.sessions.subject(merchant_id, member_id)).version
        issued = await self.sessions.issue(merchant_id, member_id, version)
        return Tokens(issued.access_token, issued.refresh_token, issued.expires_in)

    async def login(self, code: str, nickname: str) -> LoginResult:
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        # The channel is the API key's, never the body's.
        if ctx.channel not in CHANNELS:
            raise Unauthenticated("a channel API key is required")
        v = Violations()
        v.check(bool(code), "code", "required")
        v.check(len(nickname) <= NICKNAME_MAX, "nickname", f"at most {NICKNAME_MAX} characters")
        v.raise_if_any()
        config = await merchant_config(merchant_id)
        provider = self.providers.get(config.provider_for(ctx.channel))
        if provider is None:
            raise FailedPrecondition("login is not available on this channel", reason="LOGIN_PROVIDER_UNAVAILABLE")
        try:
            identity = await run_sync(provider.exchange, code, ctx.channel)
        except InvalidLoginCode as error:
            v.add("code", str(error))
            v.raise_if_any("the login code was not accepted")
        member_id, created = await run_sync(self._link, merchant_id, ctx.channel, identity, nickname.strip())
        if created:
            self.committed()
        member = await self._view(merchant_id, member_id, config)
        return LoginResult(await self._tokens(merchant_id, member_id), member, created)

    def _link(self, merchant_id: str, channel: str, identity: ProviderIdentity, nickname: str) -> tuple[str, bool]:
        """The member of this identity, creating it on first contact. Safe under races:
        unique indexes decide the winner and every loser reads and uses it."""
        link = repo.find_channel_identity(merchant_id, channel, identity.openid)
        if link is not None:
            return link["member_id"], self._ensure_member(merchant_id, link["member_id"], channel, nickname)
        union = repo.find_union_identity(merchant_id, identity.unionid)
        if union is None:
            union = {"_id": new_id("idn"), "merchant_id": merchant_id, "unionid": identity.unionid,
                     "member_id": new_id("mem"), "created_at": utcnow()}
            try:
                repo.insert_union_identity(union)
            except DuplicateKeyError:
                union = repo.find_union_identity(merchant_id, identity.unionid)
        member_id = union["member_id"]
        # Also heals a unionid whose first login died before the member was written.
        created = self._ensure_member(merchant_id, member_id, channel, nickname)
        try:
            repo.insert_channel_identity({"_id": new_id("idn"), "merchant_id": merchant_id, "channel": channel,
                                          "openid": identity.openid, "member_id": member_id,
                                          "created_at": utcnow()})
        except DuplicateKeyError:
            member_id = repo.find_channel_identity(merchant_id, channel, identity.openid)["member_id"]
        return member_id, created

    def _ensure_member(self, merchant_id: str, member_id: str, channel: str, nickname: str) -> bool:
        if repo.find_member(merchant_id, member_id) is not None:
            return False
        now = utcnow()
        view = MemberView(member_id, nickname, "", "", "REGULAR", 0, now, (channel,))
        event = outbox.make_event(REGISTERED, merchant_id=merchant_id, aggregate_id=member_id, aggregate_version=1,
                                  channel=channel,
                                  payload=events_pb2.MemberRegistered(member=member_proto(view),
                                                                      channel=member_proto(view).channels[0]))
        doc = {"_id": member_id, "merchant_id": merchant_id, "nickname": nickname, "avatar_url": "",
               "registered_channel": channel, "version": 1, "created_at": now, **outbox.for_insert(event)}
        try:
            repo.insert_member(doc)
        except DuplicateKeyError:
            return False
        return True

    async def _view(self, merchant_id: str, member_id: str, config=None) -> MemberView:
        doc = await run_sync(repo.find_member, merchant_id, member_id)
        if doc is None:
            raise NotFound("no such member")
        config = config or await merchant_config(merchant_id)
        growth = sum(await run_sync(repo.growth_entries, merchant_id, member_id))
        channels = await run_sync(repo.channels_of, merchant_id, member_id)
        return MemberView(member_id, doc.get("nickname") or "", doc.get("avatar_url") or "", doc.get("phone") or "",
                          tiers.tier_for(growth, config), growth, doc.get("created_at"), tuple(channels))

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

    async def points(self) -> Points:
        ctx = context.current()
        member_id = ctx.require_member()
        if await run_sync(repo.find_member, ctx.merchant_id, member_id) is None:
            raise NotFound("no such member")
        entries = await run_sync(repo.ledger, ctx.merchant_id, member_id)
        balance = balance_of([(int(e["points"]), bool(e.get("frozen"))) for e in entries])
        return Points(balance, entries[:ENTRIES_SHOWN])
