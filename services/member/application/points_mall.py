"""Points mall coupons: staff make coupon items, members redeem them for points.

A redemption (see domain/points_mall.py for its states) is written first, then moved on
step by step; each step is one conditional write applied once by the redemption id:

1. one unit of the item (`left >= 1`, one conditional $inc) and one place in the member's
   limit (`used < limit`, one conditional $inc) are taken, then the redemption is stored
   TAKEN (a unit taken for a redemption that was never stored goes back at once);
2. the points are spent through the points ledger (cause POINTS_MALL:<redemption>:SPEND):
   POINTS_SPENT, or UNDONE when they are not enough;
3. the coupon is issued by the coupon machinery (claim key pmr:<redemption>, so never
   twice and never over the template's total): ISSUED, or RETURNED with the points back
   when the template refuses.

UNDONE and RETURNED owe the unit and the place back. The finishing job takes redemptions a
crash left in the middle (leased, one replica each) and runs the same steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Protocol

from services.member.application.coupons import CouponUseCases
from services.member.application.points import PointsMoves
from services.member.domain import coupons as coupon_rules
from services.member.domain import points_mall as rules
from services.member.domain.coupons import MemberCoupon
from services.member.domain.points_account import lot_key
from services.member.domain.points_mall import CouponItem, ItemState, Redemption, RedemptionState
from siyu_kit import context, logging as slog, paging
from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import Conflict, FailedPrecondition, NotFound, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import to_storage_precision, utcnow

log = slog.get("siyu.member.points_mall")

MAX_KEY = 64
# A redemption not finished this long after it was made is taken by the finishing job.
FINISH_GRACE = timedelta(seconds=30)
FINISH_LEASE = timedelta(seconds=60)
FINISH_BATCH = 100


class CouponItems(Protocol):
    async def add(self, item: CouponItem) -> CouponItem:
        """Stores a new item, or answers the one its idempotency key made."""
        ...

    async def get(self, merchant_id: str, item_id: str) -> CouponItem | None: ...

    async def save(self, item: CouponItem, add_units: int = 0) -> None:
        """Its price, total and state on the version read (StaleVersion otherwise);
        `add_units` also join what is left."""
        ...

    async def page(self, merchant_id: str, after: str, limit: int, open_at: datetime | None) -> list[CouponItem]:
        """Newest first, after the id `after`; only items open at `open_at` when given."""
        ...

    async def take_unit(self, merchant_id: str, item_id: str) -> bool:
        """One unit, by one conditional update (`left >= 1`, ACTIVE); False when none is left."""
        ...

    async def give_back_unit(self, merchant_id: str, item_id: str) -> None: ...


class MemberCounters(Protocol):
    async def take_place(self, merchant_id: str, item_id: str, member_id: str, limit: int) -> bool:
        """One of the member's redemptions of the item (`used < limit`, one conditional
        update); False when they have used them all."""
        ...

    async def give_back_place(self, merchant_id: str, item_id: str, member_id: str) -> None: ...


class Redemptions(Protocol):
    async def add(self, redemption: Redemption) -> Redemption:
        """Stores it, or answers the one the member's idempotency key made."""
        ...

    async def get(self, merchant_id: str, redemption_id: str) -> Redemption | None: ...

    async def by_key(self, merchant_id: str, member_id: str, key: str) -> Redemption | None: ...

    async def save(self, redemption: Redemption, owes_back: bool = False) -> None:
        """Its state on the version read (StaleVersion otherwise); `owes_back` marks that its
        unit and place must go back."""
        ...

    async def gave_back(self, merchant_id: str, redemption_id: str) -> bool:
        """Clears the mark once (False: it was clear)."""
        ...

    async def claim_unfinished(self, made_before: datetime, lease_until: datetime,
                               now: datetime) -> Redemption | None:
        """One redemption left in the middle (or owing its unit back), leased to the caller."""
        ...

    async def page_of_member(self, merchant_id: str, member_id: str, after: str, limit: int) -> list[Redemption]: ...


@dataclass(frozen=True)
class ItemDraft:
    template_id: str
    points_price: int
    units: int
    per_member_limit: int
    starts_at: datetime | None
    ends_at: datetime | None


@dataclass
class PointsMallCoupons:
    items: CouponItems
    counters: MemberCounters
    redemptions: Redemptions
    points: PointsMoves
    coupons: CouponUseCases
    clock: Callable[[], datetime] = utcnow

    # ---- staff ------------------------------------------------------------------------------
    async def create(self, draft: ItemDraft, idempotency_key: str) -> CouponItem:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(draft.template_id, "cpt"), "template_id", "a cpt_ id")
        rules.check_item(v, draft.points_price, draft.units, draft.per_member_limit, draft.starts_at, draft.ends_at)
        v.check(1 <= len(idempotency_key) <= MAX_KEY, "idempotency_key", f"1..{MAX_KEY} characters")
        v.raise_if_any()
        template = await self.coupons.templates.get(ctx.merchant_id, draft.template_id)
        if template is None:
            raise NotFound(f"coupon template {draft.template_id} not found")
        item = CouponItem(id=new_id("pmc"), merchant_id=ctx.merchant_id, version=1, template_id=template.id,
                          name=template.name, points_price=draft.points_price, total_units=draft.units,
                          left=draft.units, per_member_limit=draft.per_member_limit or 1,
                          starts_at=draft.starts_at, ends_at=draft.ends_at, state=ItemState.ACTIVE,
                          created_at=to_storage_precision(self.clock()), idempotency_key=idempotency_key)
        return await self.items.add(item)

    async def update(self, item_id: str, points_price: int, add_units: int, expected_version: int) -> CouponItem:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(item_id, "pmc"), "item_id", "a pmc_ id")
        rules.check_change(v, points_price, add_units)
        v.check(expected_version >= 1, "expected_version", "the item's version")
        v.raise_if_any()
        item = await self._item(ctx.merchant_id, item_id)
        if item.version != expected_version:
            raise Conflict("the item changed since it was read", reason="VERSION_CONFLICT")
        try:
            item.change(points_price, add_units)
        except rules.Refused as refused:
            raise FailedPrecondition(refused.message, reason=refused.reason) from refused
        try:
            await self.items.save(item, add_units)
        except StaleVersion as error:
            raise Conflict("the item changed since it was read", reason="VERSION_CONFLICT") from error
        return await self._item(ctx.merchant_id, item_id)

    async def end(self, item_id: str) -> CouponItem:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(is_id(item_id, "pmc"), "item_id", "a pmc_ id")
        v.raise_if_any()
        for _ in range(3):
            item = await self._item(ctx.merchant_id, item_id)
            if not item.end():
                return item
            try:
                await self.items.save(item)
                return await self._item(ctx.merchant_id, item_id)
            except StaleVersion:
                continue
        raise Conflict("the item kept changing; try again", reason="CONCURRENT_UPDATE")

    async def staff_list(self, page_size: int, page_token: str) -> tuple[list[CouponItem], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return await self._page(ctx.merchant_id, page_size, page_token, None, "staff")

    # ---- members ----------------------------------------------------------------------------
    async def listed(self, page_size: int, page_token: str) -> tuple[list[CouponItem], str]:
        ctx = context.current()
        ctx.require_member()
        return await self._page(ctx.merchant_id, page_size, page_token, self.clock(), "member")

    async def _page(self, merchant_id: str, page_size: int, page_token: str, open_at: datetime | None,
                    who: str) -> tuple[list[CouponItem], str]:
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="points_mall_coupons", who=who)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        found = await self.items.page(merchant_id, after, size + 1, open_at)
        more = len(found) > size
        found = found[:size]
        return found, paging.encode_cursor(fp, found[-1].id) if more else ""

    async def my_redemptions(self, page_size: int, page_token: str) -> tuple[list[Redemption], str]:
        ctx = context.current()
        member_id = ctx.require_member()
        v = Violations()
        size = paging.page_size(v, page_size)
        fp = paging.fingerprint(kind="redemptions", member=member_id)
        after = paging.decode_cursor(v, page_token, fp)
        v.raise_if_any()
        found = await self.redemptions.page_of_member(ctx.merchant_id, member_id, after, size + 1)
        more = len(found) > size
        found = found[:size]
        return found, paging.encode_cursor(fp, found[-1].id) if more else ""

    async def redeem(self, item_id: str, idempotency_key: str) -> tuple[Redemption, MemberCoupon | None]:
        ctx = context.current()
        member_id = ctx.require_member()
        merchant_id = ctx.merchant_id
        v = Violations()
        v.check(is_id(item_id, "pmc"), "item_id", "a pmc_ id")
        v.check(1 <= len(idempotency_key) <= MAX_KEY, "idempotency_key", f"1..{MAX_KEY} characters")
        v.raise_if_any()
        existing = await self.redemptions.by_key(merchant_id, member_id, idempotency_key)
        if existing is not None:
            if existing.item_id != item_id:
                raise Conflict("the idempotency key was used for another item", reason="IDEMPOTENCY_KEY_REUSED")
            return await self._answer(await self.finish(existing))
        item = await self._item(merchant_id, item_id)
        try:
            item.require_open(self.clock())
        except rules.Refused as refused:
            raise FailedPrecondition(refused.message, reason=refused.reason) from refused
        if not await self.items.take_unit(merchant_id, item.id):
            raise FailedPrecondition("no units of this item are left", reason=rules.SOLD_OUT)
        if not await self.counters.take_place(merchant_id, item.id, member_id, item.per_member_limit):
            await self.items.give_back_unit(merchant_id, item.id)
            raise FailedPrecondition(f"one member may redeem this item {item.per_member_limit} time(s)",
                                     reason=rules.LIMIT_REACHED)
        fresh = Redemption(id=new_id("pmr"), merchant_id=merchant_id, member_id=member_id, item_id=item.id,
                           template_id=item.template_id, points=item.points_price, state=RedemptionState.TAKEN,
                           created_at=to_storage_precision(self.clock()), idempotency_key=idempotency_key)
        try:
            stored = await self.redemptions.add(fresh)
        except BaseException:
            await self._give_back(fresh)
            raise
        if stored.id != fresh.id:  # the same key won meanwhile: this unit and place go back
            await self._give_back(fresh)
        return await self._answer(await self.finish(stored))

    async def _answer(self, r: Redemption) -> tuple[Redemption, MemberCoupon | None]:
        if r.state is RedemptionState.ISSUED:
            coupon = await self.coupons.coupons.get(r.merchant_id, r.coupon_id)
            return r, coupon
        if r.state is RedemptionState.UNDONE:
            raise FailedPrecondition("not enough available points", reason=r.failure_reason)
        if r.state is RedemptionState.RETURNED:
            raise FailedPrecondition("the coupon could not be issued; the points were returned",
                                     reason=rules.COUPON_UNAVAILABLE)
        raise Conflict("the redemption is still under way; ask again with the same key", reason="CONCURRENT_UPDATE")

    # ---- the steps (also the finishing job's) -----------------------------------------------
    async def finish(self, r: Redemption) -> Redemption:
        """Moves the redemption on as far as it goes; each step is idempotent."""
        if r.state is RedemptionState.TAKEN:
            r = await self._spend(r)
        if r.state is RedemptionState.POINTS_SPENT:
            r = await self._issue(r)
        return r

    async def _spend(self, r: Redemption) -> Redemption:
        terms = await self.points.terms(r.merchant_id)
        now = self.clock()
        try:
            await self.points.apply(r.merchant_id, r.member_id, rules.spend_cause(r.id),
                                    lambda book: rules.spend_movement(book, r.id, r.points, terms.time_zone, now),
                                    terms)
        except FailedPrecondition as refused:
            if refused.reason != rules.POINTS_INSUFFICIENT:
                raise
            return await self._move(r, lambda x: x.undone(rules.POINTS_INSUFFICIENT), owes_back=True)
        return await self._move(r, lambda x: x.points_spent())

    async def _issue(self, r: Redemption) -> Redemption:
        refused = ""
        try:
            issued = await self.coupons.issue(r.merchant_id, r.template_id, r.member_id, f"pmr:{r.id}",
                                              coupon_rules.GRANT, r.id)
            refused = issued.refused if issued.coupon is None else ""
        except NotFound:
            issued, refused = None, coupon_rules.NOT_CLAIMABLE
        if not refused:
            coupon_id = issued.coupon.id
            return await self._move(r, lambda x: x.issued(coupon_id))
        terms = await self.points.terms(r.merchant_id)
        key_now = lot_key(self.clock(), terms.time_zone, terms.settings.expiry_years)
        await self.points.apply(r.merchant_id, r.member_id, rules.return_cause(r.id),
                                lambda book: rules.return_movement(book, r.id, r.points, key_now), terms)
        log.info("points_mall.coupon_refused", redemption_id=r.id, reason=refused)
        return await self._move(r, lambda x: x.returned(refused), owes_back=True)

    async def _move(self, r: Redemption, change, owes_back: bool = False) -> Redemption:
        """One state move by compare-and-set; when another writer moved it first, its state
        is what counts (the steps it took are the same ones, applied once)."""
        try:
            change(r)
            await self.redemptions.save(r, owes_back)
            r.version += 1
        except StaleVersion:
            current = await self.redemptions.get(r.merchant_id, r.id)
            if current is None:
                raise
            r = current
        if r.gives_back:
            await self._settle_back(r)
        return r

    async def _settle_back(self, r: Redemption) -> None:
        """The unit and the place of an UNDONE or RETURNED redemption go back once: whoever
        clears its mark gives them back."""
        if await self.redemptions.gave_back(r.merchant_id, r.id):
            await self._give_back(r)

    async def _give_back(self, r: Redemption) -> None:
        await self.items.give_back_unit(r.merchant_id, r.item_id)
        await self.counters.give_back_place(r.merchant_id, r.item_id, r.member_id)

    async def finish_unfinished(self, limit: int = FINISH_BATCH) -> int:
        """The job: redemptions a crash left TAKEN or POINTS_SPENT (or owing their unit
        back), each leased by one replica, finished. Returns how many it took."""
        done = 0
        for _ in range(limit):
            now = self.clock()
            r = await self.redemptions.claim_unfinished(now - FINISH_GRACE, now + FINISH_LEASE, now)
            if r is None:
                break
            token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=r.merchant_id))
            try:
                if r.finished:
                    await self._settle_back(r)
                else:
                    await self.finish(r)
                done += 1
            except Exception:  # noqa: BLE001 - the lease runs out and a later run retries
                log.warning("points_mall.finish_failed", redemption_id=r.id, exc_info=True)
            finally:
                context.reset(token)
        return done

    async def _item(self, merchant_id: str, item_id: str) -> CouponItem:
        item = await self.items.get(merchant_id, item_id)
        if item is None:
            raise NotFound(f"points-mall item {item_id} not found")
        return item
