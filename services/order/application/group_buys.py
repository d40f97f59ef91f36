"""Group buy (拼团): activities (staff), placing a group-buy order (member), taking the
slot when it is paid, promoting a formed group's orders, refunding a failed group's, and
the job that closes expired groups. The rules are in domain/group_buys.py."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Callable

from siyu_kit import context, logging as slog, retry
from siyu_kit.cancellation import require_time
from siyu_kit.aggregate import StaleVersion
from siyu_kit.errors import Conflict, FailedPrecondition, NotFound, Violations
from siyu_kit.ids import is_id, new_id
from siyu_kit.protos import to_storage_precision, utcnow

from services.order.application.checkout import ActivityPrice, Checkout, check_address_id, check_value_ask
from services.order.application.group_buy_ports import (GroupBuyActivities, GroupBuyGroups, GroupBuyTickets,
                                                        GroupRefunds, MemberProfiles, OrderRef, Ticket)
from services.order.application.orders import (MAX_KEY, PLACE_MIN_TIME_S, OrderUseCases, attribution_of,
                                               check_attribution_and_remark, place_fingerprint)
from services.order.application.ports import (ActivityPool, ActivityPools, Catalog, FlashCatalog, OrderRepository,
                                              SettingsRepository)
from services.order.domain.group_buys import (COUPON_NOT_ALLOWED, ActivityTerms, FullGroupPayment, Group,
                                              GroupBuyActivity, GroupMember, GroupState, Slot, check_terms,
                                              expiry_outcome, join_refusal, mask_nickname, pool_key, refusal_reason,
                                              take_slot, terms_with_defaults)
from services.order.domain.idempotency import fingerprint, require_same_request
from services.order.domain.member_value import OrderKind, ValueAsk
from services.order.domain.orders import CANCEL_GROUP_FAILED, GROUP_BUY, Order, OrderActivity, OrderState
from services.order.domain.price_sources import GROUP_BUY as GROUP_BUY_PRICE_KIND

log = slog.get("siyu.order.group_buy")

MAX_QUANTITY = 100
SWEEP_BATCH = 200
# A slot is fought for by at most a group's size of payments: a handful of attempts
# always settles it (each failed attempt means another order took a slot meanwhile).
SLOT_ATTEMPTS = 60
DEFAULT_PAGE = 20


@dataclass(frozen=True)
class PlaceGroupBuyOrderInput:
    activity_id: str
    sku_id: str
    idempotency_key: str
    quantity: int = 0  # 0: one unit
    group_id: str = ""  # empty: open a new group
    attribution: dict = field(default_factory=dict)
    remark: str = ""
    address_id: str = ""
    coupon_id: str = ""
    points: int = 0

    @property
    def ask(self) -> ValueAsk:
        return ValueAsk(coupon_id=self.coupon_id, points=self.points)


@dataclass(frozen=True)
class ActivityView:
    activity: GroupBuyActivity
    pools: dict[str, ActivityPool]  # sku id → the pool as the catalog says now


def _ref(o: Order, leader: bool) -> OrderRef:
    a = o.attribution
    return OrderRef(order_id=o.id, member_id=o.member_id, leader=leader, share_code=a.get("share_code", ""),
                    persona_id=a.get("persona_id", ""), channel=a.get("channel", ""))


def new_group_id_for(order_id: str) -> str:
    """The group an order opens when it finds its group full (OPEN_NEW_GROUP): fixed by the
    order, so a redelivery finds the group it opened."""
    return "grp_" + order_id.removeprefix("ord_")


@dataclass
class GroupBuyUseCases:
    activities: GroupBuyActivities
    groups: GroupBuyGroups
    tickets: GroupBuyTickets
    profiles: MemberProfiles
    pools: ActivityPools
    catalog: FlashCatalog
    skus: Catalog
    orders: OrderRepository
    settings: SettingsRepository
    checkout: Checkout
    order_cases: OrderUseCases
    refunds: GroupRefunds
    clock: Callable[[], datetime] = utcnow

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    # ---- staff -------------------------------------------------------------------------

    async def create_activity(self, idempotency_key: str, terms: ActivityTerms) -> GroupBuyActivity:
        merchant_id = context.current().merchant_id
        terms = terms_with_defaults(terms)
        v = Violations()
        v.check(1 <= len(idempotency_key) <= MAX_KEY, "idempotency_key", f"required, 1..{MAX_KEY} characters")
        check_terms(terms, v)
        v.raise_if_any()
        request_hash = fingerprint({"terms": repr(terms)})
        existing = await self.activities.by_key(merchant_id, idempotency_key)
        if existing is not None:
            require_same_request(existing.request_hash, request_hash, "group buy")
            return existing
        found = await self.skus.skus([s.sku_id for s in terms.skus])
        for i, s in enumerate(terms.skus):
            if s.sku_id not in found:
                raise NotFound(f"SKU {s.sku_id} not found", reason="SKU_NOT_FOUND")
        check_terms(terms, v, {k: (i.product_id, i.unit_price) for k, i in found.items()})
        v.raise_if_any()
        pooled = []
        for s in terms.skus:
            pool = await self.pools.create_pool(
                pool_key(f"{merchant_id}:{idempotency_key}", s.sku_id), "GROUP_BUY", s.sku_id, s.group_price,
                s.units, terms.per_member_limit, terms.starts_at, terms.ends_at, title=terms.title)
            pooled.append(replace(s, pool_id=pool.pool_id))
        activity = GroupBuyActivity(id=new_id("gba"), merchant_id=merchant_id, idempotency_key=idempotency_key,
                                    terms=replace(terms, skus=tuple(pooled)), created_at=self._now(),
                                    request_hash=request_hash)
        if await self.activities.add(activity):
            return activity
        return await self.activities.by_key(merchant_id, idempotency_key)

    async def _activity(self, activity_id: str) -> GroupBuyActivity:
        activity = await self.activities.get(context.current().merchant_id, activity_id)
        if activity is None:
            raise NotFound(f"group buy {activity_id} not found")
        return activity

    async def update_activity(self, activity_id: str, expected_version: int, **changes) -> GroupBuyActivity:
        activity = await self._activity(activity_id)
        if activity.version != expected_version:
            raise Conflict(f"the group buy is at version {activity.version}", reason="VERSION_CONFLICT")
        activity.update(**changes)
        try:
            await self.activities.save(activity)
        except StaleVersion:
            raise Conflict("the group buy changed meanwhile; read it again", reason="VERSION_CONFLICT") from None
        return activity

    async def end_activity(self, activity_id: str) -> GroupBuyActivity:
        async def attempt() -> GroupBuyActivity:
            activity = await self._activity(activity_id)
            if activity.end():
                await self.activities.save(activity)
            return activity

        return await retry.on_conflict(attempt, gave_up="the group buy kept changing; try again")

    async def staff_activities(self, page_size: int, page_token: str) -> tuple[list[GroupBuyActivity], str]:
        limit = page_size or DEFAULT_PAGE
        found = await self.activities.page(context.current().merchant_id, page_token, limit + 1)
        return found[:limit], (found[limit - 1].id if len(found) > limit else "")

    async def group(self, group_id: str) -> Group:
        group = await self.groups.get(context.current().merchant_id, group_id)
        if group is None:
            raise NotFound(f"group {group_id} not found")
        return group

    # ---- member reads ------------------------------------------------------------------

    async def _view(self, activity: GroupBuyActivity) -> ActivityView:
        pools = await asyncio.gather(*(self.pools.pool(s.pool_id) for s in activity.terms.skus))
        return ActivityView(activity, {s.sku_id: p for s, p in zip(activity.terms.skus, pools) if p is not None})

    async def activities_on(self, page_size: int, page_token: str) -> tuple[list[ActivityView], str]:
        limit = page_size or DEFAULT_PAGE
        found = await self.activities.page(context.current().merchant_id, page_token, limit + 1, on_at=self._now())
        views = [await self._view(a) for a in found[:limit]]
        return views, (found[limit - 1].id if len(found) > limit else "")

    async def activity(self, activity_id: str) -> ActivityView:
        return await self._view(await self._activity(activity_id))

    async def joinable(self, activity_id: str, page_size: int) -> list[Group]:
        activity = await self._activity(activity_id)
        now = self._now()
        found = await self.groups.joinable(activity.merchant_id, activity.id, now, page_size or DEFAULT_PAGE)
        return [g for g in found if g.is_joinable(now)]

    async def my_groups(self, page_size: int) -> list[Group]:
        ctx = context.current()
        member_id = ctx.require_member()
        tickets = await self.tickets.of_member(ctx.merchant_id, member_id, (page_size or DEFAULT_PAGE) * 2)
        ids = list(dict.fromkeys([t.group_id for t in tickets] + [new_group_id_for(t.order_id) for t in tickets]))
        found = {g.id: g for g in await self.groups.among(ctx.merchant_id, ids)}
        mine = [found[i] for i in ids if i in found and found[i].member(member_id) is not None]
        return mine[:page_size or DEFAULT_PAGE]

    # ---- placing -----------------------------------------------------------------------

    async def place(self, cmd: PlaceGroupBuyOrderInput) -> Order:
        ctx = context.current()
        member_id = ctx.require_member()
        merchant_id = ctx.merchant_id
        v = Violations()
        v.check(is_id(cmd.activity_id, "gba"), "activity_id", "must be a gba_ id")
        v.check(is_id(cmd.sku_id, "sku"), "sku_id", "must be a sku_ id")
        v.check(not cmd.group_id or is_id(cmd.group_id, "grp"), "group_id", "empty or a grp_ id")
        v.check(1 <= len(cmd.idempotency_key) <= MAX_KEY, "idempotency_key", f"required, 1..{MAX_KEY} characters")
        v.check(0 <= cmd.quantity <= MAX_QUANTITY, "quantity", f"1..{MAX_QUANTITY}, or 0 for one")
        check_attribution_and_remark(v, cmd.attribution, cmd.remark, ctx.channel)
        check_address_id(v, cmd.address_id)
        check_value_ask(v, cmd.ask)
        v.raise_if_any()
        quantity = cmd.quantity or 1
        request_hash = place_fingerprint(cmd)
        existing = await self.orders.by_key(merchant_id, member_id, cmd.idempotency_key)
        if existing:
            require_same_request(existing.request_hash, request_hash, "order")
            return existing
        activity = await self._activity(cmd.activity_id)
        now = self._now()
        sku = activity.require_on(cmd.sku_id, now)
        if cmd.ask.wants_coupon and not activity.terms.allow_coupons:
            raise FailedPrecondition("this group buy takes no coupon", reason=COUPON_NOT_ALLOWED)
        leader = not cmd.group_id
        if not leader:
            group = await self.groups.get(merchant_id, cmd.group_id)
            if group is not None and group.activity_id != activity.id:
                group = None
            refused = join_refusal(group, member_id, now)
            if refused is not None:
                raise FailedPrecondition(refused[1], reason=refused[0])
        checked = await self.order_cases.attributed(cmd.attribution)
        address = await self.checkout.shipping_to(merchant_id, member_id, cmd.address_id)
        settings = await self.settings.of_merchant(merchant_id)
        expires_at = now + timedelta(seconds=settings.flash_sale_expiry_s)
        order_id, reservation_id = new_id("ord"), new_id("rsv")
        group_id = new_group_id_for(order_id) if leader else cmd.group_id
        require_time(PLACE_MIN_TIME_S, "buy from the group buy")
        await self.order_cases.reserved(reservation_id, self.catalog.reserve_flash_sale(
            reservation_id, order_id, sku.pool_id, member_id, quantity,
            self.order_cases.reservation_expiry(expires_at), kind="GROUP_BUY"))
        try:
            priced = await self.checkout.price(
                merchant_id, member_id, [(sku.sku_id, quantity)],
                activity_prices={sku.sku_id: ActivityPrice(sku.unit_price(leader), activity.id,
                                                            GROUP_BUY_PRICE_KIND)},
                address=address, ask=cmd.ask, kind=OrderKind.GROUP_BUY)
            referral = await self.order_cases.referral(member_id, checked.sharer_id)
            if referral is not None:
                # Whether this order earns commission is the activity's switch.
                referral = replace(referral, group_buy_commission=activity.terms.pay_commission)
            nickname, avatar = await self.profiles.nickname_and_avatar(member_id)
            await self.tickets.put(Ticket(order_id=order_id, merchant_id=merchant_id, member_id=member_id,
                                          activity_id=activity.id, group_id=group_id, leader=leader,
                                          nickname=mask_nickname(nickname), avatar_url=avatar, created_at=now))
        except (Exception, asyncio.CancelledError):
            await self.order_cases.release_at_once(reservation_id)
            raise
        held_at = await self.order_cases.hold_value(merchant_id, member_id, order_id, reservation_id, priced,
                                                    expires_at)
        return await self.order_cases.create_order(
            merchant_id=merchant_id, member_id=member_id, idempotency_key=cmd.idempotency_key, priced=priced,
            order_id=order_id, reservation_id=reservation_id, created_at=now, expires_at=expires_at,
            attribution=attribution_of(checked.attribution, ctx.channel), remark=cmd.remark,
            request_hash=request_hash, value_held_at=held_at, referral=referral,
            activity=OrderActivity(kind=GROUP_BUY, activity_id=activity.id, group_id=group_id,
                                   group_leader=leader))

    # ---- events: the order paid, the group formed or failed ---------------------------

    async def take_slot(self, merchant_id: str, order_id: str) -> Slot | None:
        """A group-buy order was paid (order.grouping): its slot is taken, or the group is
        opened; a payment that finds no slot is refunded (or opens a new group, per the
        activity). None when the order is no longer GROUPING (a redelivery)."""
        order = await self.orders.get(merchant_id, order_id)
        if order is None or order.state is not OrderState.GROUPING or order.activity is None:
            return None
        ticket = await self.tickets.get(merchant_id, order_id)
        nickname, avatar = (ticket.nickname, ticket.avatar_url) if ticket else (mask_nickname(""), "")
        activity = await self.activities.get(merchant_id, order.activity.activity_id)
        if activity is None:
            raise NotFound(f"group buy {order.activity.activity_id} not found")
        now = self._now()
        a = order.attribution
        if order.activity.group_leader:
            return await self._open(activity, order, order.activity.group_id, nickname, avatar, now)
        member = GroupMember(member_id=order.member_id, order_id=order.id, leader=False, joined_at=now,
                             nickname=nickname, avatar_url=avatar, share_code=a.get("share_code", ""),
                             persona_id=a.get("persona_id", ""), channel=a.get("channel", ""))
        slot = Slot.CLOSED
        for _ in range(SLOT_ATTEMPTS):
            group = await self.groups.get(merchant_id, order.activity.group_id)
            slot = take_slot(group, order.member_id, order.id, now) if group is not None else Slot.CLOSED
            if slot not in (Slot.JOINED, Slot.FORMED):
                break
            if await self.groups.take(group, member, _ref(order, False), now, last=slot is Slot.FORMED):
                log.info("group.joined", group_id=group.id, order_id=order.id, formed=slot is Slot.FORMED)
                return slot
        if slot is Slot.REPEAT:
            return slot
        if activity.terms.full_group_payment is FullGroupPayment.OPEN_NEW_GROUP and activity.is_on(now):
            return await self._open(activity, order, new_group_id_for(order.id), nickname, avatar, now)
        await self.refunds.refund_grouping(merchant_id, order.id, refusal_reason(slot))
        return slot

    async def _open(self, activity: GroupBuyActivity, order: Order, group_id: str, nickname: str, avatar: str,
                    now: datetime) -> Slot:
        a = order.attribution
        opened_at = order.paid_at or now
        leader = GroupMember(member_id=order.member_id, order_id=order.id, leader=True, joined_at=opened_at,
                             nickname=nickname, avatar_url=avatar, share_code=a.get("share_code", ""),
                             persona_id=a.get("persona_id", ""), channel=a.get("channel", ""))
        group = Group(id=group_id, merchant_id=order.merchant_id, activity_id=activity.id,
                      sku_id=order.lines[0].sku_id, size=activity.terms.group_size, state=GroupState.OPEN,
                      opened_at=opened_at, expires_at=activity.group_deadline(opened_at), members=(leader,))
        if await self.groups.open(group, _ref(order, True)):
            log.info("group.opened", group_id=group_id, order_id=order.id)
            return Slot.JOINED
        return Slot.REPEAT

    async def formed(self, merchant_id: str, group_id: str) -> int:
        """group.formed: every order of the group GROUPING → PAID (order.paid). Each order
        once: a repeat finds it PAID. Returns how many moved now."""
        group = await self.groups.get(merchant_id, group_id)
        if group is None or group.state is not GroupState.FORMED:
            raise NotFound(f"no formed group {group_id}")
        moved = 0
        for m in group.members:
            moved += await self._promote(merchant_id, m.order_id)
        return moved

    async def _promote(self, merchant_id: str, order_id: str) -> int:
        async def attempt() -> int:
            order = await self.orders.get(merchant_id, order_id)
            if order is None:
                raise NotFound(f"order {order_id} not found")
            if not order.group_formed(self._now()):
                return 0
            await self.orders.save(order)
            return 1

        return await retry.on_conflict(attempt, gave_up="the order kept changing while its group formed; retry")

    async def failed(self, merchant_id: str, group_id: str) -> int:
        """group.failed: every paid order of the group is cancelled and refunded, once each."""
        group = await self.groups.get(merchant_id, group_id)
        if group is None or group.state is not GroupState.FAILED:
            raise NotFound(f"no failed group {group_id}")
        done = 0
        for m in group.members:
            order = await self.refunds.refund_grouping(merchant_id, m.order_id, CANCEL_GROUP_FAILED)
            done += order is not None
        return done

    async def sweep(self, limit: int = SWEEP_BATCH) -> int:
        """The job: OPEN groups past their deadline become FAILED (or FORMED with
        placeholders), each by a compare-and-set on its state and paid count, so replicas
        running at once close each group once."""
        now = self._now()
        closed = 0
        for group in await self.groups.expired(now, limit):
            activity = await self.activities.get(group.merchant_id, group.activity_id)
            bp = activity.terms.virtual_fill_bp if activity is not None else 0
            if await self.groups.close(group, expiry_outcome(group, bp), now):
                closed += 1
        if closed:
            log.info("group.swept", count=closed)
        return closed

