"""Distribution (分销) and exclusive guide (专属导购) use cases: the merchant's settings and
distributor levels, applications and their decision, distributors made by their spend,
customers' bindings (share codes opened, orders placed, store codes scanned), who an order
is credited to (ResolveReferral), and the distributor's and the guide's views.

Every binding change is ONE conditional update from the binding read to the new one (a
lost race reads again and decides again), then a history entry. Who an order is credited
to is read in as few commands as possible, since it runs on every placement: the settings,
the customer's ties (distributor, upline and guide in one document), the distributors
involved in one read, and the level and the guide's store only when there is one.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Awaitable, Callable

from services.member.application.distribution_ports import (BindingHistory, CustomerStore, CustomerTies,
                                                            DistributionSettingsStore, DistributorStore, Guides,
                                                            GuideProfiles, LevelStore, MemberCards, SpendStore)
from services.member.application.ports import AuditLog
from services.member.domain import admin as audit_rules
from services.member.domain import distribution as rules
from services.member.domain.admin import AuditEntry
from services.member.domain.distribution import (ACTIVE, Binding, Credit, DistributionSettings, Distributor,
                                                 DistributorLevel)
from services.member.domain.referral import mask_nickname
from siyu_kit.events.invalidation import TtlCache
from siyu_kit import context, paging, retry
from siyu_kit.aggregate import Move, StaleVersion
from siyu_kit.errors import Conflict, FailedPrecondition, NotFound, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.logging import mask_phone
from siyu_kit.protos import epoch_ms, utcnow

MAX_VERSION = 1_000_000_000
MAX_REASON = 200
MAX_STORE = 64
DISTRIBUTOR, GUIDE = "DISTRIBUTOR", "GUIDE"
CUSTOMER = "CUSTOMER"
# Positions of the binding lists: the bound time (15 digits) and the member id.
KEY = re.compile(r"^[0-9]{15}:mem_[0-9A-HJKMNP-TV-Z]{26}$")


@dataclass(frozen=True)
class MyDistributor:
    distributor: Distributor
    rates: tuple[int, int]
    upline_nickname_masked: str
    bound_customers: int
    team_distributors: int


@dataclass(frozen=True)
class TeamRow:
    kind: str
    nickname_masked: str
    since: datetime | None
    expired: bool = False


@dataclass(frozen=True)
class GuideCustomerView:
    member_id: str
    nickname_masked: str
    phone_masked: str
    tags: tuple[str, ...]
    bound_at: datetime | None
    last_paid_at: datetime | None


def _at(ms: int) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms else None


class Distribution:
    def __init__(self, settings: DistributionSettingsStore, levels: LevelStore, distributors: DistributorStore,
                 customers: CustomerStore, history: BindingHistory, guide_profiles: GuideProfiles, spend: SpendStore,
                 cards: MemberCards, guides: Guides, audit: AuditLog | None = None,
                 clock: Callable[[], datetime] = utcnow, settings_cache: TtlCache | None = None):
        self.settings_store = settings
        # The merchant's settings as ResolveReferral (every order) reads them: no event
        # announces a change, so they are kept for the cache's time-to-live, and this
        # process drops them when it changes them. None: read on every order.
        self.settings_cache = settings_cache
        self.levels = levels
        self.distributors = distributors
        self.customers = customers
        self.history = history
        self.guide_profiles = guide_profiles
        self.spend = spend
        self.cards = cards
        self.guides = guides
        self.audit = audit
        self.clock = clock

    async def _audit(self, action: str, target_id: str, before: dict[str, str], after: dict[str, str]) -> None:
        if self.audit is None:
            return
        ctx = context.current()
        await self.audit.add(AuditEntry(new_id("aud"), ctx.merchant_id, ctx.caller_kind, ctx.caller_id, action,
                                        target_id, before, after, self.clock()))

    # ---- settings -------------------------------------------------------------------------
    async def get_settings(self) -> tuple[DistributionSettings, int]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return await self.settings_store.get(ctx.merchant_id)

    async def update_settings(self, settings: DistributionSettings,
                              expected_version: int) -> tuple[DistributionSettings, int]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        for path, why in settings.problems():
            v.add(path, why)
        v.check(0 <= expected_version <= MAX_VERSION, "expected_version", "the version read with the settings")
        v.raise_if_any()
        before, version = await self.settings_store.get(ctx.merchant_id)
        stale = Conflict("the distribution settings changed since they were read; read them again",
                         reason="VERSION_CONFLICT")
        if version != expected_version:
            raise stale
        new_version = await self.settings_store.put(ctx.merchant_id, settings, expected_version)
        if self.settings_cache is not None:
            self.settings_cache.drop(ctx.merchant_id)
        if new_version is None:
            raise stale
        await self._audit(audit_rules.DISTRIBUTION_SETTINGS_UPDATED, audit_rules.DISTRIBUTION_SETTINGS_TARGET,
                          before.summary(), settings.summary())
        return settings, new_version

    # ---- levels ---------------------------------------------------------------------------
    async def create_level(self, idempotency_key: str, name: str, l1: int, l2: int) -> tuple[DistributorLevel, bool]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(0 < len(idempotency_key) <= 64, "idempotency_key", "1 to 64 characters")
        v.check(len(name) <= 32, "name", "at most 32 characters")
        for path, why in rules.level_problems(name, l1, l2):
            v.add(path, why)
        v.raise_if_any()
        if len(await self.levels.all(ctx.merchant_id)) >= rules.MAX_LEVEL_COUNT:
            raise FailedPrecondition(f"at most {rules.MAX_LEVEL_COUNT} levels", reason="DISTRIBUTOR_LEVEL_LIMIT")
        level = DistributorLevel(new_id("dlv"), ctx.merchant_id, name.strip(), l1, l2)
        stored, created = await self.levels.add(level, idempotency_key)
        if created:
            await self._audit(audit_rules.DISTRIBUTOR_LEVEL_CHANGED, stored.id, {}, _level_summary(stored))
        return stored, created

    async def update_level(self, level_id: str, name: str, l1: int, l2: int, expected_version: int) -> DistributorLevel:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(level_id, "dlv"), "level_id", "a dlv_ id")
        v.check(len(name) <= 32, "name", "at most 32 characters")
        v.check(1 <= expected_version <= MAX_VERSION, "expected_version", "the version read with the level")
        for path, why in rules.level_problems(name, l1, l2):
            v.add(path, why)
        v.raise_if_any()
        level = await self.levels.get(ctx.merchant_id, level_id)
        if level is None:
            raise NotFound("no such distributor level", reason="DISTRIBUTOR_LEVEL_NOT_FOUND")
        if level.version != expected_version:
            raise Conflict("the level changed since it was read; read it again", reason="VERSION_CONFLICT")
        before = _level_summary(level)
        level.name, level.level1_rate_bp, level.level2_rate_bp = name.strip(), l1, l2
        try:
            await self.levels.save(level)
        except StaleVersion:
            raise Conflict("the level changed since it was read; read it again", reason="VERSION_CONFLICT")
        level.version += 1
        await self._audit(audit_rules.DISTRIBUTOR_LEVEL_CHANGED, level.id, before, _level_summary(level))
        return level

    async def list_levels(self) -> list[DistributorLevel]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        return await self.levels.all(ctx.merchant_id)

    # ---- becoming a distributor -------------------------------------------------------------
    async def apply(self, reason: str) -> Distributor:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(len(reason) <= MAX_REASON, "reason", f"at most {MAX_REASON} characters")
        v.raise_if_any()
        settings, _ = await self.settings_store.get(ctx.merchant_id)
        if not settings.enabled:
            raise FailedPrecondition("the merchant has no distribution", reason="DISTRIBUTION_DISABLED")

        async def attempt() -> Distributor:
            found = await self.distributors.of_member(ctx.merchant_id, member_id)
            now = self.clock()
            if found is None:
                made = Distributor.applied(new_id("dst"), ctx.merchant_id, member_id, reason.strip(), now)
                if not await self.distributors.add(made):
                    raise StaleVersion("applied meanwhile")
                return made
            if found.state in (rules.PENDING, ACTIVE):
                return found
            if found.state == rules.DISABLED:
                raise FailedPrecondition("the distributorship was disabled by the merchant",
                                         reason="DISTRIBUTOR_DISABLED")
            found.reapply(reason.strip(), now)
            await self.distributors.save(found)
            found.version += 1
            return found

        return await retry.on_conflict(attempt, gave_up="the application changed meanwhile; try again")

    async def _decide(self, member_id: str,
                      change: Callable[[Distributor, datetime], Awaitable[Move | None]]) -> Distributor:
        """A staff decision on a distributor: read, change (REPEAT: already so, nothing
        written), save on the version read, audit."""
        ctx = context.current()
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.raise_if_any()

        async def attempt() -> Distributor:
            found = await self.distributors.of_member(ctx.merchant_id, member_id)
            if found is None:
                raise NotFound("no such distributor", reason="DISTRIBUTOR_NOT_FOUND")
            before = _distributor_summary(found)
            if await change(found, self.clock()) is Move.REPEAT:
                return found
            await self.distributors.save(found)
            found.version += 1
            await self._audit(audit_rules.DISTRIBUTOR_CHANGED, found.member_id, before, _distributor_summary(found))
            return found

        return await retry.on_conflict(attempt, gave_up="the distributor changed meanwhile; try again")

    async def approve(self, member_id: str) -> Distributor:
        ctx = context.current()
        ctx.require_staff("OPERATOR")

        async def change(d: Distributor, now: datetime):
            if d.state == ACTIVE:
                return Move.REPEAT
            if d.state != rules.PENDING:
                raise FailedPrecondition(f"a distributor in state {d.state} is not awaiting a decision",
                                         reason="STATUS_TRANSITION")
            d.activate(await self._upline_of(ctx.merchant_id, d.member_id), now)

        return await self._decide(member_id, change)

    async def reject(self, member_id: str, reason: str) -> Distributor:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(0 < len(reason.strip()) <= MAX_REASON, "reason", f"1 to {MAX_REASON} characters")
        v.raise_if_any()

        async def change(d: Distributor, now: datetime):
            if d.state == rules.REJECTED:
                return Move.REPEAT
            d.reject(reason.strip(), now)

        return await self._decide(member_id, change)

    async def set_enabled(self, member_id: str, enabled: bool) -> Distributor:
        ctx = context.current()
        ctx.require_staff("OPERATOR")

        async def change(d: Distributor, now: datetime):
            target = ACTIVE if enabled else rules.DISABLED
            if d.state == target:
                return Move.REPEAT
            if enabled:
                rules.MACHINE.require(d.state, ACTIVE)
                if d.state != rules.DISABLED:
                    raise FailedPrecondition("only a disabled distributor is enabled; approve an application",
                                             reason="STATUS_TRANSITION")
                d.activate(None, now)
            else:
                d.disable(now)

        return await self._decide(member_id, change)

    async def set_level(self, member_id: str, level_id: str) -> Distributor:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(not level_id or is_id(level_id, "dlv"), "level_id", "a dlv_ id")
        v.raise_if_any()
        if level_id and await self.levels.get(ctx.merchant_id, level_id) is None:
            raise NotFound("no such distributor level", reason="DISTRIBUTOR_LEVEL_NOT_FOUND")

        async def change(d: Distributor, now: datetime):
            if d.level_id == level_id:
                return Move.REPEAT
            d.set_level(level_id, now)

        return await self._decide(member_id, change)

    async def _upline_of(self, merchant_id: str, member_id: str) -> Distributor | None:
        """The ACTIVE distributor the member is bound to now (unexpired), if any."""
        settings, _ = await self.settings_store.get(merchant_id)
        ties = await self.customers.of(merchant_id, member_id)
        if not ties.binding.live(settings.binding_days, epoch_ms(self.clock())):
            return None
        upline = await self.distributors.of_member(merchant_id, ties.binding.distributor_id)
        return upline if upline is not None and upline.state == ACTIVE else None

    async def on_spend(self, merchant_id: str, member_id: str, order_id: str, net: int) -> bool:
        """An order paid or refunded (order events): counted in the member's spend once;
        a member whose spend reaches the merchant's threshold is an ACTIVE distributor
        (once; a DISABLED one stays disabled). Whether this made them one."""
        spend = await self.spend.record(merchant_id, member_id, order_id, max(net, 0))
        settings, _ = await self.settings_store.get(merchant_id)
        if not settings.enabled or settings.auto_threshold <= 0 or spend < settings.auto_threshold:
            return False

        async def attempt() -> bool:
            found = await self.distributors.of_member(merchant_id, member_id)
            now = self.clock()
            upline = await self._upline_of(merchant_id, member_id)
            if found is None:
                made = Distributor.applied(new_id("dst"), merchant_id, member_id, "", now)
                made.activate(upline, now, automatic=True)
                if not await self.distributors.add(made):
                    raise StaleVersion("applied meanwhile")
                return True
            if found.state not in (rules.PENDING, rules.REJECTED):
                return False
            found.activate(upline, now, automatic=True)
            await self.distributors.save(found)
            return True

        return await retry.on_conflict(attempt, gave_up="the distributor changed meanwhile")

    # ---- bindings ---------------------------------------------------------------------------
    async def _bind(self, merchant_id: str, settings: DistributionSettings, member_id: str, ties: CustomerTies,
                    sharer: Distributor | None, source: str) -> tuple[str, CustomerTies]:
        """Binds the customer to the sharing distributor by the rules: ONE conditional
        update when it changes. The outcome and the ties after it."""
        outcome = rules.binding_decision(settings, ties.binding, member_id, sharer, epoch_ms(self.clock()))
        if not rules.changes_binding(outcome):
            return outcome, ties
        assert sharer is not None
        new = Binding(sharer.member_id, epoch_ms(self.clock()))
        if not await self.customers.bind_distributor(merchant_id, member_id, ties.binding, new, sharer.upline_id):
            raise StaleVersion("the binding changed meanwhile")
        await self.history.add(merchant_id, member_id, DISTRIBUTOR, ties.binding.distributor_id, sharer.member_id,
                               source, "", new.bound_ms)
        return outcome, replace(ties, binding=new, upline_id=sharer.upline_id)

    async def _bind_guide(self, merchant_id: str, member_id: str, ties: CustomerTies, guide_id: str,
                          source: str, actor_id: str = "") -> tuple[bool, CustomerTies]:
        if rules.guide_decision(ties.guide_id, guide_id) != rules.BOUND:
            return False, ties
        now_ms = epoch_ms(self.clock())
        if not await self.customers.bind_guide(merchant_id, member_id, ties.guide_id, guide_id, now_ms):
            raise StaleVersion("the guide binding changed meanwhile")
        await self.history.add(merchant_id, member_id, GUIDE, ties.guide_id, guide_id, source, actor_id, now_ms)
        return True, replace(ties, guide_id=guide_id, guide_ms=now_ms)

    async def on_share_opened(self, merchant_id: str, member_id: str, sharer_id: str) -> str:
        """A signed-in member opened a share code (content's ShareCodeOpened): binds them to
        the sharing distributor or guide by the rules. The outcome (for the log)."""
        if sharer_id == member_id:
            return rules.SELF

        async def attempt() -> str:
            if sharer_id.startswith("stf_"):
                if not await self.guides.is_guide(merchant_id, sharer_id):
                    return rules.NOT_DISTRIBUTOR
                ties = await self.customers.of(merchant_id, member_id)
                bound, _ = await self._bind_guide(merchant_id, member_id, ties, sharer_id, rules.SHARE_CODE)
                return rules.BOUND if bound else rules.KEPT
            settings, _ = await self.settings_store.get(merchant_id)
            if not settings.enabled:
                return rules.OFF
            ties, sharer = await asyncio.gather(self.customers.of(merchant_id, member_id),
                                                self.distributors.of_member(merchant_id, sharer_id))
            outcome, _ = await self._bind(merchant_id, settings, member_id, ties, sharer, rules.SHARE_CODE)
            return outcome

        return await retry.on_conflict(attempt, gave_up="the binding changed meanwhile")

    async def resolve(self, member_id: str, sharer_id: str) -> Credit:
        """Who an order the member places now is credited to, binding them through the
        order's sharer first (ResolveReferral)."""
        ctx = context.current()
        merchant_id = ctx.require_merchant()
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.check(not sharer_id or is_id(sharer_id, "mem") or is_id(sharer_id, "stf"), "sharer_id",
                "a mem_ or stf_ id")
        v.raise_if_any()

        async def attempt() -> Credit:
            now_ms = epoch_ms(self.clock())
            (settings, _), ties = await asyncio.gather(self._settings_for_orders(merchant_id),
                                                       self.customers.of(merchant_id, member_id))
            sharer_guide = ""
            if sharer_id.startswith("stf_") and await self.guides.is_guide(merchant_id, sharer_id):
                sharer_guide = sharer_id
                _, ties = await self._bind_guide(merchant_id, member_id, ties, sharer_id, rules.ORDER)
            credit = Credit()
            if settings.enabled:
                wanted = {i for i in (ties.binding.distributor_id, ties.upline_id) if i}
                if sharer_id.startswith("mem_") and sharer_id != member_id:
                    wanted.add(sharer_id)
                found = await self.distributors.of_members(merchant_id, sorted(wanted)) if wanted else {}
                if sharer_id in found:
                    _, ties = await self._bind(merchant_id, settings, member_id, ties, found[sharer_id], rules.ORDER)
                    if ties.upline_id and ties.upline_id not in found:
                        found.update(await self.distributors.of_members(merchant_id, [ties.upline_id]))
                l1 = found.get(ties.binding.distributor_id)
                level = await self.levels.get(merchant_id, l1.level_id) if l1 is not None and l1.level_id else None
                credit = rules.credit_for(settings, ties.binding, l1, level, found.get(ties.upline_id), now_ms)
            guide_id = rules.credited_guide(settings, ties.guide_id, sharer_guide)
            if guide_id:
                store = await self.guide_profiles.store_of(merchant_id, guide_id)
                credit = replace(credit, guide_id=guide_id, guide_rate_bp=settings.guide_rate_bp, guide_store=store)
            return credit

        return await retry.on_conflict(attempt, gave_up="the member's bindings changed meanwhile; try again")

    async def _settings_for_orders(self, merchant_id: str) -> tuple[DistributionSettings, int]:
        if self.settings_cache is None:
            return await self.settings_store.get(merchant_id)
        return await self.settings_cache.get_or_load(merchant_id, lambda: self.settings_store.get(merchant_id))

    # ---- guides -----------------------------------------------------------------------------
    async def bind_guide(self, guide_id: str) -> tuple[str, bool]:
        """The calling member scanned a guide's store code: the first guide stays."""
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(is_id(guide_id, "stf"), "guide_id", "a stf_ id")
        v.raise_if_any()
        if not await self.guides.is_guide(ctx.merchant_id, guide_id):
            raise NotFound("no such guide", reason="GUIDE_NOT_FOUND")

        async def attempt() -> tuple[str, bool]:
            ties = await self.customers.of(ctx.merchant_id, member_id)
            bound, ties = await self._bind_guide(ctx.merchant_id, member_id, ties, guide_id, rules.STORE_CODE)
            return ties.guide_id, bound

        return await retry.on_conflict(attempt, gave_up="the guide binding changed meanwhile; try again")

    async def reassign_guide(self, member_id: str, guide_id: str) -> str:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.check(is_id(guide_id, "stf"), "guide_id", "a stf_ id")
        v.raise_if_any()
        if not await self.cards.cards(ctx.merchant_id, [member_id], contact=False):
            raise NotFound("no such member")
        if not await self.guides.is_guide(ctx.merchant_id, guide_id):
            raise NotFound("no such guide", reason="GUIDE_NOT_FOUND")

        async def attempt() -> str:
            ties = await self.customers.of(ctx.merchant_id, member_id)
            if ties.guide_id == guide_id:
                return guide_id
            now_ms = epoch_ms(self.clock())
            if not await self.customers.bind_guide(ctx.merchant_id, member_id, ties.guide_id, guide_id, now_ms):
                raise StaleVersion("the guide binding changed meanwhile")
            await self.history.add(ctx.merchant_id, member_id, GUIDE, ties.guide_id, guide_id, rules.STAFF,
                                   ctx.caller_id, now_ms)
            await self._audit(audit_rules.EXCLUSIVE_GUIDE_REASSIGNED, member_id, {"guide_id": ties.guide_id},
                              {"guide_id": guide_id})
            return guide_id

        return await retry.on_conflict(attempt, gave_up="the guide binding changed meanwhile; try again")

    async def set_guide_store(self, guide_id: str, store: str) -> str:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(guide_id, "stf"), "guide_id", "a stf_ id")
        v.check(len(store) <= MAX_STORE, "store", f"at most {MAX_STORE} characters")
        v.raise_if_any()
        if not await self.guides.is_guide(ctx.merchant_id, guide_id):
            raise NotFound("no such guide", reason="GUIDE_NOT_FOUND")
        await self.guide_profiles.set_store(ctx.merchant_id, guide_id, store.strip())
        return store.strip()

    async def my_guide_customers(self, page_size: int, page_token: str) -> tuple[list[GuideCustomerView], str]:
        ctx = context.current()
        guide_id = ctx.require_staff("GUIDE")
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="guide-customers", guide=guide_id)
        after = paging.decode_cursor(v, page_token, fp, KEY)
        v.raise_if_any()
        rows = await self.customers.guide_customers(ctx.merchant_id, guide_id, after, size + 1)
        rows, token = paging.next_page(rows, size, fp, position=lambda r: r[2])
        cards = await self.cards.cards(ctx.merchant_id, [r[0] for r in rows], contact=True) if rows else {}
        out = []
        for member_id, bound_ms, _ in rows:
            card = cards.get(member_id)
            if card is None:
                continue  # erased since
            out.append(GuideCustomerView(member_id, mask_nickname(card.nickname),
                                         mask_phone(card.phone) if card.phone else "", card.tags, _at(bound_ms),
                                         _at(card.last_paid_ms)))
        return out, token

    # ---- distributor views ------------------------------------------------------------------
    async def mine(self) -> MyDistributor:
        ctx = context.current()
        member_id = ctx.require_member()
        (settings, _), found = await asyncio.gather(self.settings_store.get(ctx.merchant_id),
                                                    self.distributors.of_member(ctx.merchant_id, member_id))
        if found is None:
            raise NotFound("the member is no distributor", reason="DISTRIBUTOR_NOT_FOUND")
        since = epoch_ms(self.clock()) - settings.binding_days * 86_400_000
        level, customers, team, upline = await asyncio.gather(
            self.levels.get(ctx.merchant_id, found.level_id) if found.level_id else _none(),
            self.customers.count_customers(ctx.merchant_id, member_id, since + 1),
            self.distributors.count_downline(ctx.merchant_id, member_id),
            self.cards.cards(ctx.merchant_id, [found.upline_id], contact=False) if found.upline_id else _empty())
        card = upline.get(found.upline_id)
        return MyDistributor(found, rules.rates_of(settings, level), mask_nickname(card.nickname) if card else "",
                             customers, team)

    async def my_team(self, kind: str, page_size: int, page_token: str) -> tuple[list[TeamRow], str]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(kind in (CUSTOMER, DISTRIBUTOR), "kind", "CUSTOMER or DISTRIBUTOR")
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="team", of=kind)
        after = paging.decode_cursor(v, page_token, fp, KEY if kind == CUSTOMER else paging.ID)
        v.raise_if_any()
        if await self.distributors.of_member(ctx.merchant_id, member_id) is None:
            raise NotFound("the member is no distributor", reason="DISTRIBUTOR_NOT_FOUND")
        if kind == CUSTOMER:
            settings, _ = await self.settings_store.get(ctx.merchant_id)
            rows = await self.customers.customers(ctx.merchant_id, member_id, after, size + 1)
            rows, token = paging.next_page(rows, size, fp, position=lambda r: r[2])
            ids = [r[0] for r in rows]
            now_ms = epoch_ms(self.clock())
            entries = [(m, ms, not Binding(member_id, ms).live(settings.binding_days, now_ms)) for m, ms, _ in rows]
        else:
            found = await self.distributors.downline(ctx.merchant_id, member_id, after, size + 1)
            found, token = paging.next_page(found, size, fp)
            ids = [d.member_id for d in found]
            entries = [(d.member_id, epoch_ms(d.activated_at) if d.activated_at else 0, False) for d in found]
        cards = await self.cards.cards(ctx.merchant_id, ids, contact=False) if ids else {}
        return [TeamRow(kind, mask_nickname(cards[m].nickname) if m in cards else "", _at(ms), expired)
                for m, ms, expired in entries], token

    # ---- staff views ------------------------------------------------------------------------
    async def get(self, member_id: str) -> tuple[Distributor, tuple[int, int]]:
        ctx = context.current()
        ctx.require_staff("OPERATOR", "FINANCE")
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "a mem_ id")
        v.raise_if_any()
        found = await self.distributors.of_member(ctx.merchant_id, member_id)
        if found is None:
            raise NotFound("no such distributor", reason="DISTRIBUTOR_NOT_FOUND")
        return found, await self.rates(found)

    async def rates(self, d: Distributor) -> tuple[int, int]:
        settings, _ = await self.settings_store.get(d.merchant_id)
        level = await self.levels.get(d.merchant_id, d.level_id) if d.level_id else None
        return rules.rates_of(settings, level)

    async def listing(self, state: str, page_size: int, page_token: str, applications: bool = False,
                   ) -> tuple[list[tuple[Distributor, tuple[int, int]]], str]:
        ctx = context.current()
        if applications:
            ctx.require_staff("OPERATOR")
            state = state or rules.PENDING
        else:
            ctx.require_staff("OPERATOR", "FINANCE")
        v = Violations()
        v.check(not state or state in rules.STATES, "state", "one of " + ", ".join(rules.STATES))
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="distributors", state=state)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        rows = await self.distributors.page(ctx.merchant_id, state, after, size + 1)
        rows, token = paging.next_page(rows, size, fp)
        settings, _ = await self.settings_store.get(ctx.merchant_id)
        level_ids = {d.level_id for d in rows if d.level_id}
        levels = {lv.id: lv for lv in await self.levels.all(ctx.merchant_id)} if level_ids else {}
        return [(d, rules.rates_of(settings, levels.get(d.level_id))) for d in rows], token


def _level_summary(level: DistributorLevel) -> dict[str, str]:
    return {"name": level.name, "level1_rate_bp": str(level.level1_rate_bp),
            "level2_rate_bp": str(level.level2_rate_bp)}


def _distributor_summary(d: Distributor) -> dict[str, str]:
    return {"state": d.state, "level_id": d.level_id, "upline_id": d.upline_id}


async def _none():
    return None


async def _empty() -> dict:
    return {}
