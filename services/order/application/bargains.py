"""Bargain use cases (砍价): operators run activities; a member starts a bargain, friends
help it down to the floor, the starter orders at the price reached; a job fails the ones
whose time is up.

Races, and how they are closed:
- a help is a compare-and-set on the bargain's version: the change (the helper appended,
  the next stored cut, SUCCEEDED with the last one) and its events are one conditional
  write. Losers read again and try again; every loss means another help (or a final move)
  went in, so a helper tries at most helpers-needed + 3 times. Concurrent helpers never go
  past the helpers needed, so the price never passes the floor;
- the per-member help limits are counters taken by one conditional `$inc` before the help
  and given back when the help is refused;
- one open bargain per member and activity: a unique key on the open bargain decides;
- one order per bargain: the bargain moves to ORDERED (naming the order) by
  compare-and-set before the order is written; a failed write moves it back.
"""
from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Callable

from siyu_kit import context, logging as slog, retry
from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import Conflict, FailedPrecondition, NotFound, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import to_storage_precision, utcnow

from services.order.application.bargain_ports import BargainActivities, Bargains, HelpCounters, Invitees
from services.order.application.checkout import ActivityPrice, Checkout, check_address_id
from services.order.application.orders import (MAX_KEY, PLACE_MIN_TIME_S, OrderUseCases, attribution_of,
                                                check_attribution_and_remark, place_fingerprint)
from services.order.application.ports import (ActivityPools, Catalog, FlashCatalog, OrderRepository,
                                               SettingsRepository)
from services.order.domain import bargains as rules
from services.order.domain.bargains import (ActivityState, ActivityTerms, Attribution, Bargain, BargainActivity,
                                            BargainState)
from services.order.domain.idempotency import require_same_request
from services.order.domain.orders import Order, OrderActivity
from services.order.domain.price_sources import BARGAIN
from siyu_kit.cancellation import require_time

log = slog.get("siyu.order.bargain")

KIND = "BARGAIN"
TERMS = "activity."  # where the terms sit in CreateBargainActivityRequest
SEED_BITS = 48
PAGE_DEFAULT, PAGE_MAX = 20, 100


def _page_size(v: Violations, size: int) -> int:
    v.check(0 <= size <= PAGE_MAX, "page_size", f"1..{PAGE_MAX}, or 0 for {PAGE_DEFAULT}")
    return size or PAGE_DEFAULT


def _next_token(rows: list, size: int) -> str:
    return rows[-1].id if len(rows) == size else ""


@dataclass(frozen=True)
class PlaceBargainOrderInput:
    bargain_id: str
    idempotency_key: str
    attribution: dict = field(default_factory=dict)
    remark: str = ""
    address_id: str = ""


@dataclass(frozen=True)
class HelpResult:
    bargain: Bargain
    cut: int
    bound_as_invitee: bool


@dataclass
class BargainUseCases:
    activities: BargainActivities
    bargains: Bargains
    counters: HelpCounters
    pools: ActivityPools
    invitees: Invitees | None = None
    # The SKU's list price, checked before the pool is made; None: the pool's answer only.
    skus: Catalog | None = None
    # Ordering; None in a build that only runs activities and helps.
    orders: OrderRepository | None = None
    settings: SettingsRepository | None = None
    catalog: FlashCatalog | None = None
    checkout: Checkout | None = None
    order_cases: OrderUseCases | None = None
    clock: Callable[[], datetime] = utcnow
    new_seed: Callable[[], int] = lambda: secrets.randbits(SEED_BITS)

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    # ---- staff: activities ---------------------------------------------------------
    async def create_activity(self, idempotency_key: str, terms: ActivityTerms) -> BargainActivity:
        merchant_id = context.current().merchant_id
        v = Violations()
        v.check(1 <= len(idempotency_key) <= MAX_KEY, "idempotency_key", f"required, 1..{MAX_KEY} characters")
        v.check(is_id(terms.sku_id, "sku"), "activity.sku_id", "a sku_ id")
        rules.check_terms(v, terms, None, TERMS)
        v.raise_if_any()
        existing = await self.activities.by_key(merchant_id, idempotency_key)
        if existing is not None:
            return existing
        if self.skus is not None:
            # The prices are checked against the list price before any unit moves.
            sku = (await self.skus.skus([terms.sku_id])).get(terms.sku_id)
            if sku is None:
                raise NotFound(f"SKU {terms.sku_id} not found")
            v = Violations()
            rules.check_terms(v, terms, sku.unit_price, TERMS)
            v.raise_if_any()
        # The catalog moves the units (once per key) and refuses a pool price not below the
        # list price; the floor is the pool's price, a bound no bargain goes under.
        pool = await self.pools.create_pool(f"bga:{idempotency_key}", KIND, terms.sku_id, terms.floor_price,
                                            terms.units, terms.per_member_limit, terms.starts_at, terms.ends_at,
                                            title=terms.title)
        v = Violations()
        rules.check_terms(v, terms, pool.list_price, TERMS)
        v.raise_if_any()
        terms = replace(terms, product_id=pool.product_id, title=terms.title or pool.title)
        activity = BargainActivity(id=new_id("bga"), merchant_id=merchant_id, version=1, terms=terms,
                                   pool_id=pool.pool_id, list_price=pool.list_price, state=ActivityState.ACTIVE,
                                   created_at=self._now())
        if not await self.activities.add(activity, idempotency_key):
            found = await self.activities.by_key(merchant_id, idempotency_key)
            if found is None:
                raise Conflict("the activity was being created by another call; try again")
            return found
        return activity

    async def _activity(self, activity_id: str) -> BargainActivity:
        if not is_id(activity_id, "bga"):
            v = Violations()
            v.add("activity_id", "a bga_ id")
            v.raise_if_any()
        found = await self.activities.get(context.current().merchant_id, activity_id)
        if found is None:
            raise NotFound(f"bargain activity {activity_id} not found")
        return found

    async def update_activity(self, activity_id: str, *, title: str, ends_at: datetime, helps_per_member: int,
                              helps_per_day: int, buy_before_floor: bool, bind_new_helpers: bool
                              ) -> BargainActivity:
        async def attempt() -> BargainActivity:
            a = await self._activity(activity_id)
            v = Violations()
            v.check(ends_at > a.terms.starts_at, "ends_at", "after starts_at")
            v.raise_if_any()
            a.update(title=title, ends_at=ends_at, helps_per_member=helps_per_member or rules.DEFAULT_HELPS_PER_ACTIVITY,
                     helps_per_day=helps_per_day or rules.DEFAULT_HELPS_PER_DAY, buy_before_floor=buy_before_floor,
                     bind_new_helpers=bind_new_helpers)
            await self.activities.save(a)
            return a
        return await retry.on_conflict(attempt, gave_up="the activity changed meanwhile; try again")

    async def end_activity(self, activity_id: str) -> BargainActivity:
        async def attempt() -> BargainActivity:
            a = await self._activity(activity_id)
            if a.state != ActivityState.ENDED:
                a.end(self._now())
                await self.activities.save(a)
            return a
        return await retry.on_conflict(attempt, gave_up="the activity changed meanwhile; try again")

    async def list_activities(self, page_size: int, page_token: str, *, open_only: bool
                              ) -> tuple[list[BargainActivity], str]:
        v = Violations()
        size = _page_size(v, page_size)
        v.check(not page_token or is_id(page_token, "bga"), "page_token", "a bga_ id")
        v.raise_if_any()
        rows = await self.activities.page(context.current().merchant_id, page_token, size,
                                          open_at=self._now() if open_only else None)
        return rows, _next_token(rows, size)

    async def pool_left(self, activity: BargainActivity) -> int:
        pool = await self.pools.pool(activity.pool_id)
        return pool.available if pool is not None else 0

    async def get_activity(self, activity_id: str) -> BargainActivity:
        return await self._activity(activity_id)

    # ---- members: bargains ---------------------------------------------------------
    async def start(self, activity_id: str, attribution: dict) -> tuple[Bargain, bool]:
        """The member's bargain of the activity: a new one, or (False) the open one."""
        ctx = context.current()
        member_id = ctx.require_member()
        activity = await self._activity(activity_id)
        found = await self.bargains.open_of(ctx.merchant_id, activity_id, member_id)
        if found is not None:
            return found, False
        now = self._now()
        activity.require_open(now)
        bargain = Bargain.start(bargain_id=new_id("bgn"), activity=activity, member_id=member_id,
                                seed=self.new_seed(), now=now,
                                attribution=Attribution(channel=ctx.channel,
                                                        persona_id=attribution.get("persona_id", ""),
                                                        share_code=attribution.get("share_code", "")))
        if await self.bargains.add(bargain):
            return bargain, True
        found = await self.bargains.open_of(ctx.merchant_id, activity_id, member_id)
        if found is None:
            raise Conflict("the bargain was being started by another call; try again")
        return found, False

    async def _bargain(self, bargain_id: str) -> Bargain:
        if not is_id(bargain_id, "bgn"):
            v = Violations()
            v.add("bargain_id", "a bgn_ id")
            v.raise_if_any()
        found = await self.bargains.get(context.current().merchant_id, bargain_id)
        if found is None:
            raise NotFound(f"bargain {bargain_id} not found")
        return found

    async def get(self, bargain_id: str) -> Bargain:
        """Any member of the merchant with the link may see a bargain."""
        context.current().require_member()
        return await self._bargain(bargain_id)

    async def get_as_staff(self, bargain_id: str) -> Bargain:
        return await self._bargain(bargain_id)

    async def mine(self, page_size: int, page_token: str) -> tuple[list[Bargain], str]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        size = _page_size(v, page_size)
        v.check(not page_token or is_id(page_token, "bgn"), "page_token", "a bgn_ id")
        v.raise_if_any()
        rows = await self.bargains.of_member(ctx.merchant_id, member_id, page_token, size)
        return rows, _next_token(rows, size)

    async def help(self, bargain_id: str, nickname: str) -> HelpResult:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        v.check(len(nickname) <= 64, "nickname", "at most 64 characters")
        v.raise_if_any()
        bargain = await self._bargain(bargain_id)
        now = self._now()
        refusal = bargain.refusal_to_help(member_id, now)
        if refusal is not None:
            raise refusal
        activity = await self.activities.get(ctx.merchant_id, bargain.activity_id)
        if activity is None:
            raise NotFound(f"bargain {bargain_id} not found")
        taken = await self._take_helps(ctx.merchant_id, activity, member_id, now)
        try:
            bargain, cut = await self._cut(bargain, member_id, rules.mask_nickname(nickname))
        except BaseException:
            await self._give_back(ctx.merchant_id, taken)
            raise
        bound = False
        if activity.terms.bind_new_helpers and self.invitees is not None:
            bound = await self._bind(bargain, member_id)
        return HelpResult(bargain=bargain, cut=cut, bound_as_invitee=bound)

    async def _take_helps(self, merchant_id: str, activity: BargainActivity, member_id: str, now: datetime
                          ) -> list[str]:
        t = activity.terms
        keys = [(f"{activity.id}:{member_id}", t.helps_per_member),
                (f"{activity.id}:{member_id}:{rules.business_day(now)}", t.helps_per_day)]
        taken: list[str] = []
        for key, limit in keys:
            if not await self.counters.take(merchant_id, key, limit):
                await self._give_back(merchant_id, taken)
                raise FailedPrecondition("you have used up your helps for this activity today or in all",
                                         reason=rules.HELP_LIMIT_REACHED)
            taken.append(key)
        return taken

    async def _give_back(self, merchant_id: str, keys: list[str]) -> None:
        for key in keys:
            await self.counters.give_back(merchant_id, key)

    async def _cut(self, bargain: Bargain, member_id: str, nickname: str) -> tuple[Bargain, int]:
        # Each lost compare-and-set means another help or a final move went in.
        for _ in range(bargain.helpers_needed + 3):
            h = bargain.help(member_id, nickname, self._now())
            try:
                await self.bargains.save(bargain)
                return bargain, h.cut
            except StaleVersion:
                bargain = await self._bargain(bargain.id)
        raise Conflict("the bargain changed too often meanwhile; try again")

    async def _bind(self, bargain: Bargain, member_id: str) -> bool:
        """The member service binds a new member to the starter; a failure never fails the help."""
        try:
            return await self.invitees.bind(bargain.member_id, member_id, f"bargain:{bargain.id}")
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the help stands whatever the binding does
            log.warning("bargain.bind_failed", bargain_id=bargain.id, helper_id=member_id, error=str(error))
            return False

    # ---- ordering ------------------------------------------------------------------
    async def place_order(self, cmd: PlaceBargainOrderInput) -> tuple[Order, Bargain]:
        ctx = context.current()
        member_id = ctx.require_member()
        merchant_id = ctx.merchant_id
        v = Violations()
        v.check(is_id(cmd.bargain_id, "bgn"), "bargain_id", "a bgn_ id")
        v.check(1 <= len(cmd.idempotency_key) <= MAX_KEY, "idempotency_key", f"required, 1..{MAX_KEY} characters")
        check_attribution_and_remark(v, cmd.attribution, cmd.remark, ctx.channel)
        check_address_id(v, cmd.address_id)
        v.raise_if_any()
        assert self.orders and self.settings and self.catalog and self.checkout and self.order_cases
        request_hash = place_fingerprint(cmd)
        bargain = await self._bargain(cmd.bargain_id)
        if bargain.member_id != member_id:
            raise NotFound(f"bargain {cmd.bargain_id} not found")
        existing = await self.orders.by_key(merchant_id, member_id, cmd.idempotency_key)
        if existing:
            require_same_request(existing.request_hash, request_hash, "order")
            return existing, bargain
        now = self._now()
        bargain.require_orderable(now)
        activity = await self.activities.get(merchant_id, bargain.activity_id)
        if activity is None:
            raise NotFound(f"bargain {cmd.bargain_id} not found")
        checked = await self.order_cases.attributed(cmd.attribution)
        address = await self.checkout.shipping_to(merchant_id, member_id, cmd.address_id)
        settings = await self.settings.of_merchant(merchant_id)
        # Paid within the merchant's usual window, like any order.
        expires_at = now + timedelta(seconds=settings.unpaid_expiry_s)
        order_id, reservation_id = new_id("ord"), new_id("rsv")
        # The bargain is claimed for this order first: a second order (another key) loses here.
        price, before = bargain.price, bargain.state
        bargain.ordered(order_id, now)
        try:
            await self.bargains.save(bargain)
        except StaleVersion:
            raise FailedPrecondition("the bargain changed meanwhile (ordered or expired)",
                                     reason=rules.BARGAIN_FINISHED) from None
        try:
            require_time(PLACE_MIN_TIME_S, "order the bargain")
            won = await self.order_cases.reserved(reservation_id, self.catalog.reserve_flash_sale(
                reservation_id, order_id, activity.pool_id, member_id, 1,
                self.order_cases.reservation_expiry(expires_at), kind=KIND))
            try:
                priced = await self.checkout.price(
                    merchant_id, member_id, [(won.sku_id, 1)],
                    activity_prices={won.sku_id: ActivityPrice(price, activity.id, BARGAIN)}, address=address)
                referral = await self.order_cases.referral(member_id, checked.sharer_id)
            except (Exception, asyncio.CancelledError):
                await self.order_cases.release_at_once(reservation_id)
                raise
            order = await self.order_cases.create_order(
                merchant_id=merchant_id, member_id=member_id, idempotency_key=cmd.idempotency_key, priced=priced,
                order_id=order_id, reservation_id=reservation_id, created_at=now, expires_at=expires_at,
                attribution=attribution_of(checked.attribution, ctx.channel), remark=cmd.remark,
                request_hash=request_hash, referral=referral,
                activity=OrderActivity(kind=KIND, activity_id=activity.id, bargain_id=bargain.id))
        except (Exception, asyncio.CancelledError):
            await self._unclaim(merchant_id, bargain.id, order_id, before)
            raise
        if order.id != order_id:  # the same key won a race: that order is the bargain's
            await self._unclaim(merchant_id, bargain.id, order_id, before)
            bargain = await self._bargain(bargain.id)
        return order, bargain

    async def _unclaim(self, merchant_id: str, bargain_id: str, order_id: str, state: BargainState) -> None:
        """Gives the bargain back when no order of `order_id` was written."""
        async def attempt() -> None:
            b = await self.bargains.get(merchant_id, bargain_id)
            if b is None or b.state != BargainState.ORDERED or b.order_id != order_id:
                return
            b.unclaim(order_id, state)
            await self.bargains.save(b)
        try:
            await asyncio.shield(retry.on_conflict(attempt, gave_up="the bargain changed meanwhile"))
        except Exception as error:  # noqa: BLE001 - the caller's own error is what it sees
            log.warning("bargain.unclaim_failed", bargain_id=bargain_id, order_id=order_id, error=str(error))

    # ---- the expiry job --------------------------------------------------------------
    async def fail_due(self, limit: int = 100) -> int:
        """ACTIVE/SUCCEEDED bargains past their time → FAILED, each by compare-and-set, so
        with several replicas each bargain fails (and says so) once."""
        now = self._now()
        failed = 0
        for bargain in await self.bargains.due(now, limit):
            if not bargain.fail(now):
                continue
            try:
                await self.bargains.save(bargain)
                failed += 1
            except StaleVersion:
                continue  # ordered meanwhile, or another replica failed it
        return failed
