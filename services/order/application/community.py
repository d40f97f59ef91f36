"""Community group buy (社区团购): leaders apply and staff review them, staff run campaigns,
members order from a leader's campaign, the batch is delivered to the pickup point, the
buyer collects with a code, and uncollected orders follow the merchant's rule.

Ordering is an ordinary order (PlaceOrder's flow: idempotency, attribution, SKU stock
reserved by the catalog, priced, written by OrderUseCases.create_order) with the campaign
price as the lines' activity price, no address and no shipping fee, the leader's
commission in its referral and the pickup code in its activity. Delivery, pickup and the
uncollected rule use the order's own moves (ship, deliver, complete) and the refund
machinery, so refunds and after-sales work as for any order; each is one write on the
order's version, and each job decision is conditional, so three replicas act once."""
from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Callable

from siyu_kit import context, logging as slog, retry
from siyu_kit.aggregate import StaleVersion
from siyu_kit.cancellation import require_time
from siyu_kit.errors import Conflict, FailedPrecondition, NotFound, Violations
from siyu_kit.ids import new_id
from siyu_kit.protos import epoch_ms, to_storage_precision, utcnow

from services.order.application.checkout import ActivityPrice, Checkout
from services.order.domain.price_sources import COMMUNITY
from services.order.application.community_ports import (Batch, Batches, CampaignRepository, CommunityOrders,
                                                         CommunitySettingsRepository, LeaderRepository, MemberLimits,
                                                         PickupCodes, Pickups)
from services.order.application.orders import (MAX_KEY, PLACE_MIN_TIME_S, OrderUseCases, attribution_of,
                                                check_attribution_and_remark)
from services.order.application.ports import Catalog, OpenRefunds, OrderRepository, SettingsRepository
from services.order.application.refunds import RefundInput, RefundUseCases
from services.order.domain import community as rules
from services.order.domain.commissions import Referral
from services.order.domain.community import (Campaign, CampaignLine, CommunityLeader, CommunitySettings,
                                             LeaderPick, PickupPoint, UncollectedAction)
from services.order.domain.idempotency import fingerprint, require_same_request
from services.order.domain.orders import CONFIRMED_BY_AUTO, Order, OrderActivity, OrderState
from services.order.domain.refunds import LineRequest

log = slog.get("siyu.order.community")

MAX_LINES = 50
MAX_QUANTITY = 999
CODE_ATTEMPTS = 5
DEFAULT_PAGE = 20
SHOWN_STATES = ("PAID", "SHIPPED", "DELIVERED", "COMPLETED")
UNCOLLECTED_REFUND_KEY = "community-uncollected"
UNCOLLECTED_NOTE = "not collected from the pickup point"


@dataclass(frozen=True)
class PlaceCommunityOrderInput:
    campaign_id: str
    leader_id: str
    lines: list[tuple[str, int]]
    idempotency_key: str
    remark: str = ""
    attribution: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NewCampaign:
    idempotency_key: str
    title: str
    lines: list[tuple[str, int, int]]  # (sku, price, per-member limit)
    starts_at: datetime | None
    cut_off_at: datetime
    pickup_date: str
    leader_rate_bp: int = 0


@dataclass(frozen=True)
class Dashboard:
    leader: CommunityLeader
    orders: list[Order]
    pick_list: tuple
    picked_up: int
    waiting: int
    commission: rules.CommissionFigures


def _pickup_date_ok(text: str) -> bool:
    try:
        date.fromisoformat(text)
        return True
    except ValueError:
        return False


@dataclass
class CommunityUseCases:
    leaders: LeaderRepository
    campaigns: CampaignRepository
    settings: CommunitySettingsRepository
    community_orders: CommunityOrders
    codes: PickupCodes
    limits: MemberLimits
    batches: Batches
    pickups: Pickups
    orders: OrderRepository
    order_settings: SettingsRepository
    open_refunds: OpenRefunds
    catalog: Catalog
    checkout: Checkout
    order_cases: OrderUseCases
    refunds: RefundUseCases | None = None
    clock: Callable[[], datetime] = utcnow
    new_code: Callable[[], str] = rules.new_pickup_code

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    # ---- leaders -------------------------------------------------------------------------

    async def apply(self, name: str, point: PickupPoint) -> CommunityLeader:
        ctx = context.current()
        member_id = ctx.require_member()
        existing = await self.leaders.of_member(ctx.merchant_id, member_id)
        if existing is not None:
            return await self._reapply(existing, name, point)
        leader = CommunityLeader(id=new_id("cld"), merchant_id=ctx.merchant_id, member_id=member_id, name=name,
                                 pickup_point=replace(point, pickup_point_id=new_id("pkp")), created_at=self._now())
        if await self.leaders.add(leader):
            return leader
        raced = await self.leaders.of_member(ctx.merchant_id, member_id)
        if raced is None:
            raise NotFound("the leader changed while applying; try again")
        return await self._reapply(raced, name, point)

    async def _reapply(self, existing: CommunityLeader, name: str, point: PickupPoint) -> CommunityLeader:
        if rules.reapply(existing, name, point):
            await self.leaders.save(existing)  # StaleVersion (ABORTED) when a review raced it
        return existing

    async def review(self, leader_id: str, approve: bool, reason: str) -> CommunityLeader:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        v = Violations()
        v.check(approve or bool(reason.strip()), "reason", "required when rejecting")
        v.raise_if_any()

        async def attempt() -> CommunityLeader:
            leader = await self._leader(ctx.merchant_id, leader_id)
            if leader.review(approve, reason):
                await self.leaders.save(leader)
            return leader

        return await retry.on_conflict(attempt, gave_up="the leader changed while reviewing; try again")

    async def set_enabled(self, leader_id: str, enabled: bool) -> CommunityLeader:
        ctx = context.current()
        ctx.require_staff("OPERATOR")

        async def attempt() -> CommunityLeader:
            leader = await self._leader(ctx.merchant_id, leader_id)
            if leader.set_enabled(enabled):
                await self.leaders.save(leader)
            return leader

        return await retry.on_conflict(attempt, gave_up="the leader changed; try again")

    async def get_leader(self, leader_id: str) -> CommunityLeader:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return await self._leader(ctx.merchant_id, leader_id)

    async def list_leaders(self, state: str, page_size: int, page_token: str) -> tuple[list[CommunityLeader], str]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        size = page_size or DEFAULT_PAGE
        found = await self.leaders.page(ctx.merchant_id, state, page_token, size + 1)
        more = len(found) > size
        found = found[:size]
        return found, (found[-1].id if more else "")

    async def _leader(self, merchant_id: str, leader_id: str) -> CommunityLeader:
        leader = await self.leaders.get(merchant_id, leader_id)
        if leader is None:
            raise NotFound(f"leader {leader_id} not found")
        return leader

    async def _active_leader(self, merchant_id: str, leader_id: str) -> CommunityLeader:
        """A leader members may see and order through; NOT_FOUND for any other."""
        leader = await self.leaders.get(merchant_id, leader_id)
        if leader is None or not leader.is_active:
            raise NotFound(f"leader {leader_id} not found")
        return leader

    # ---- campaigns -----------------------------------------------------------------------

    async def create_campaign(self, cmd: NewCampaign) -> Campaign:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        request_hash = fingerprint({k: (v.isoformat() if isinstance(v, datetime) else v)
                                    for k, v in asdict(cmd).items() if k != "idempotency_key"})
        existing = await self.campaigns.by_key(ctx.merchant_id, cmd.idempotency_key)
        if existing is not None:
            require_same_request(existing.request_hash, request_hash, "campaign")
            return existing
        now = self._now()
        starts_at = to_storage_precision(cmd.starts_at) if cmd.starts_at else now
        cut_off_at = to_storage_precision(cmd.cut_off_at)
        v = Violations()
        v.check(_pickup_date_ok(cmd.pickup_date), "pickup_date", "a date, YYYY-MM-DD")
        v.check(cut_off_at > now, "cut_off_at", "in the future")
        skus = await self.catalog.skus([s for s, _, _ in cmd.lines])
        for i, (sku_id, _, _) in enumerate(cmd.lines):
            v.check(sku_id in skus, f"lines[{i}].sku_id", f"{sku_id} does not exist")
        for name, problem in rules.campaign_problems(cmd.lines, {s: i.unit_price for s, i in skus.items()},
                                                     starts_at, cut_off_at):
            v.add(name, problem)
        v.raise_if_any()
        campaign = Campaign(
            id=new_id("cmp"), merchant_id=ctx.merchant_id, title=cmd.title,
            lines=tuple(CampaignLine(sku_id=s, title=skus[s].title, price=p, list_price=skus[s].unit_price,
                                     per_member_limit=limit) for s, p, limit in cmd.lines),
            starts_at=starts_at, cut_off_at=cut_off_at, pickup_date=cmd.pickup_date,
            leader_rate_bp=rules.leader_rate(cmd.leader_rate_bp), created_at=now,
            idempotency_key=cmd.idempotency_key, request_hash=request_hash)
        if await self.campaigns.add(campaign):
            return campaign
        winner = await self.campaigns.by_key(ctx.merchant_id, cmd.idempotency_key)
        if winner is None:
            raise NotFound("the campaign changed while creating it; try again")
        require_same_request(winner.request_hash, request_hash, "campaign")
        return winner

    async def list_campaigns(self, leader_id: str) -> tuple[list[Campaign], CommunityLeader | None]:
        ctx = context.current()
        ctx.require_member()
        leader = await self._active_leader(ctx.merchant_id, leader_id) if leader_id else None
        return await self.campaigns.open_ones(ctx.merchant_id, self._now(), 100), leader

    async def get_campaign(self, campaign_id: str, leader_id: str) -> tuple[Campaign, CommunityLeader | None]:
        ctx = context.current()
        ctx.require_member()
        campaign = await self._campaign(ctx.merchant_id, campaign_id)
        leader = await self._active_leader(ctx.merchant_id, leader_id) if leader_id else None
        return campaign, leader

    async def _campaign(self, merchant_id: str, campaign_id: str) -> Campaign:
        campaign = await self.campaigns.get(merchant_id, campaign_id)
        if campaign is None:
            raise NotFound(f"campaign {campaign_id} not found")
        return campaign

    def state_of(self, campaign: Campaign) -> rules.CampaignState:
        return campaign.state_at(self._now())

    # ---- ordering ------------------------------------------------------------------------

    async def place(self, cmd: PlaceCommunityOrderInput) -> Order:
        ctx = context.current()
        member_id = ctx.require_member()
        merchant_id = ctx.merchant_id
        v = Violations()
        v.check(1 <= len(cmd.idempotency_key) <= MAX_KEY, "idempotency_key", f"required, 1..{MAX_KEY} characters")
        if v.check(1 <= len(cmd.lines) <= MAX_LINES, "lines", f"1..{MAX_LINES} lines"):
            seen: set[str] = set()
            for i, (sku_id, quantity) in enumerate(cmd.lines):
                v.check(1 <= quantity <= MAX_QUANTITY, f"lines[{i}].quantity", f"1..{MAX_QUANTITY}")
                v.check(sku_id not in seen, f"lines[{i}].sku_id", "each SKU once")
                seen.add(sku_id)
        check_attribution_and_remark(v, cmd.attribution, cmd.remark, ctx.channel)
        v.raise_if_any()
        request_hash = fingerprint({k: val for k, val in asdict(cmd).items() if k != "idempotency_key"})
        existing = await self.orders.by_key(merchant_id, member_id, cmd.idempotency_key)
        if existing:
            require_same_request(existing.request_hash, request_hash, "order")
            return existing
        campaign = await self._campaign(merchant_id, cmd.campaign_id)
        now = self._now()
        campaign.require_open(now)
        leader = await self.leaders.get(merchant_id, cmd.leader_id)
        if leader is None:
            raise NotFound(f"leader {cmd.leader_id} not found")
        leader.require_active()
        prices: dict[str, ActivityPrice] = {}
        for i, (sku_id, _) in enumerate(cmd.lines):
            line = campaign.line(sku_id)
            if line is None:
                v.add(f"lines[{i}].sku_id", f"{sku_id} is not in the campaign")
            else:
                prices[sku_id] = ActivityPrice(line.price, campaign.id, COMMUNITY)
        v.raise_if_any()
        checked = await self.order_cases.attributed(cmd.attribution)
        settings = await self.order_settings.of_merchant(merchant_id)
        expires_at = now + timedelta(seconds=settings.unpaid_expiry_s)
        order_id, reservation_id = new_id("ord"), new_id("rsv")
        taken = await self._take_limits(merchant_id, campaign, member_id, cmd.lines)
        try:
            require_time(PLACE_MIN_TIME_S, "place the order")
            await self.order_cases.reserved(reservation_id, self.catalog.reserve(
                reservation_id, order_id, list(cmd.lines), self.order_cases.reservation_expiry(expires_at)))
        except (Exception, asyncio.CancelledError):
            await self._give_back(merchant_id, campaign.id, member_id, taken)
            raise
        try:
            priced = await self.checkout.price(merchant_id, member_id, list(cmd.lines), activity_prices=prices,
                                               no_shipping=True)
            referral = await self.order_cases.referral(member_id, checked.sharer_id)
            code = await self._claim_code(merchant_id, campaign.id, leader.id, order_id)
        except (Exception, asyncio.CancelledError):
            await self.order_cases.release_at_once(reservation_id)
            await self._give_back(merchant_id, campaign.id, member_id, taken)
            raise
        referral = replace(referral or Referral(), community_leader_id=leader.member_id,
                           community_leader_rate_bp=campaign.leader_rate_bp)
        order = await self.order_cases.create_order(
            merchant_id=merchant_id, member_id=member_id, idempotency_key=cmd.idempotency_key, priced=priced,
            order_id=order_id, reservation_id=reservation_id, created_at=now, expires_at=expires_at,
            attribution=attribution_of(checked.attribution, ctx.channel), remark=cmd.remark,
            request_hash=request_hash, referral=referral,
            activity=OrderActivity(kind=rules.KIND, activity_id=campaign.id, leader_id=leader.id,
                                   pickup_point_id=leader.pickup_point.pickup_point_id, pickup_code=code))
        if order.id != order_id:  # another request with the key won: its order stands
            await self._give_back(merchant_id, campaign.id, member_id, taken)
        return order

    async def _take_limits(self, merchant_id: str, campaign: Campaign, member_id: str,
                           lines: list[tuple[str, int]]) -> list[tuple[str, int]]:
        """Counts the lines against the per-member limits, one conditional update each;
        refused (and the units taken so far given back) when one would pass its limit."""
        taken: list[tuple[str, int]] = []
        for sku_id, quantity in lines:
            limit = campaign.line(sku_id).per_member_limit
            if not limit:
                continue
            if not await self.limits.take(merchant_id, campaign.id, member_id, sku_id, quantity, limit):
                await self._give_back(merchant_id, campaign.id, member_id, taken)
                raise FailedPrecondition(f"at most {limit} units of {sku_id} per member in this campaign",
                                         reason=rules.CAMPAIGN_LIMIT_REACHED)
            taken.append((sku_id, quantity))
        return taken

    async def _give_back(self, merchant_id: str, campaign_id: str, member_id: str,
                         taken: list[tuple[str, int]]) -> None:
        for sku_id, quantity in taken:
            try:
                await self.limits.give_back(merchant_id, campaign_id, member_id, sku_id, quantity)
            except Exception:  # noqa: BLE001 - the member is only held to a stricter limit
                log.warning("community.limit_give_back_failed", sku_id=sku_id, exc_info=True)

    async def _claim_code(self, merchant_id: str, campaign_id: str, leader_id: str, order_id: str) -> str:
        for _ in range(CODE_ATTEMPTS):
            code = self.new_code()
            if await self.codes.claim(merchant_id, campaign_id, leader_id, code, order_id):
                return code
        raise Conflict("no free pickup code; try again")

    # ---- pick lists and delivery ---------------------------------------------------------

    async def pick_list(self, campaign_id: str, leader_id: str) -> tuple[list[tuple[LeaderPick, CommunityLeader | None]],
                                                                          tuple]:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        campaign = await self._campaign(ctx.merchant_id, campaign_id)
        if leader_id:
            await self._leader(ctx.merchant_id, leader_id)
        orders = await self.community_orders.of_campaign(ctx.merchant_id, campaign.id, ["PAID"])
        by_leader: dict[str, list[Order]] = {}
        for o in orders:
            if not leader_id or o.activity.leader_id == leader_id:
                by_leader.setdefault(o.activity.leader_id, []).append(o)
        out = []
        for lid in sorted(by_leader):
            batch = by_leader[lid]
            out.append((LeaderPick(leader_id=lid, orders=len(batch),
                                   lines=rules.pick_lines(l for o in batch for l in o.lines)),
                        await self.leaders.get(ctx.merchant_id, lid)))
        total = rules.pick_lines(l for o in orders if not leader_id or o.activity.leader_id == leader_id
                                 for l in o.lines)
        return out, total

    async def mark_delivered(self, campaign_id: str, leader_id: str) -> tuple[int, int]:
        """Ships and delivers every PAID order of the batch, each in one write on its
        version; (delivered now, left out for an open refund). A repeat delivers nothing."""
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        campaign = await self._campaign(ctx.merchant_id, campaign_id)
        await self._leader(ctx.merchant_id, leader_id)
        now = self._now()
        delivered, skipped, ids = 0, 0, []
        for order in await self.community_orders.of_batch(ctx.merchant_id, campaign.id, leader_id, ["PAID"]):
            done = await self._deliver_one(ctx.merchant_id, order.id, campaign.id, now)
            if done is None:
                skipped += 1
            elif done:
                delivered += 1
                ids.append(order.id)
        if ids:
            previous = await self.batches.get(ctx.merchant_id, campaign.id, leader_id)
            await self.batches.delivered(Batch(
                merchant_id=ctx.merchant_id, campaign_id=campaign.id, leader_id=leader_id,
                delivered_at=previous.delivered_at if previous else now,
                order_ids=tuple(dict.fromkeys((previous.order_ids if previous else ()) + tuple(ids)))))
        return delivered, skipped

    async def _deliver_one(self, merchant_id: str, order_id: str, campaign_id: str, now: datetime) -> bool | None:
        """True: shipped and delivered now; False: already; None: a refund is open."""

        async def attempt() -> bool | None:
            order = await self.orders.get(merchant_id, order_id)
            if order is None or order.state is not OrderState.PAID:
                return False
            if await self.open_refunds.count_open(merchant_id, order.id):
                return None
            order.ship(rules.CARRIER, campaign_id.replace("_", "-"), epoch_ms(now),
                       auto_confirm_days=rules.PICKUP_AUTO_CONFIRM_DAYS, open_refunds=0)
            order.deliver(now)
            await self.orders.save(order)
            return True

        try:
            return await retry.on_conflict(attempt, gave_up="the order changed while delivering; try again")
        except FailedPrecondition:
            return None

    # ---- pickup --------------------------------------------------------------------------

    async def confirm_by_leader(self, campaign_id: str, pickup_code: str, order_id: str) -> Order:
        ctx = context.current()
        member_id = ctx.require_member()
        leader = await self.leaders.of_member(ctx.merchant_id, member_id)
        if leader is None or leader.state is not rules.LeaderState.APPROVED:
            raise NotFound("not a leader of this merchant")
        return await self._confirm(ctx.merchant_id, campaign_id, leader.id, pickup_code, order_id, "LEADER")

    async def confirm_by_staff(self, campaign_id: str, leader_id: str, pickup_code: str, order_id: str) -> Order:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        await self._leader(ctx.merchant_id, leader_id)
        return await self._confirm(ctx.merchant_id, campaign_id, leader_id, pickup_code, order_id, "STAFF")

    async def _confirm(self, merchant_id: str, campaign_id: str, leader_id: str, code: str, order_id: str,
                       by: str) -> Order:
        await self._campaign(merchant_id, campaign_id)

        async def attempt() -> Order:
            if order_id:
                order = await self.orders.get(merchant_id, order_id)
                if (order is None or order.activity is None or order.activity.kind != rules.KIND
                        or order.activity.activity_id != campaign_id or order.activity.leader_id != leader_id):
                    raise NotFound(f"order {order_id} not found")
                if not rules.code_matches(order.activity.pickup_code, code):
                    raise FailedPrecondition("the pickup code does not match the order",
                                             reason=rules.PICKUP_CODE_MISMATCH)
            else:
                order = await self.community_orders.by_code(merchant_id, campaign_id, leader_id, code)
                if order is None:
                    raise FailedPrecondition("no order of this batch has that pickup code",
                                             reason=rules.PICKUP_CODE_MISMATCH)
            if order.state is OrderState.COMPLETED and order.confirmed_by == rules.CONFIRMED_BY_PICKUP:
                # A repeat; also finishes the pickup record a crash after the order's write left out.
                await self.pickups.record(merchant_id, order, by, order.completed_at)
                return order
            if order.state is not OrderState.DELIVERED:
                raise FailedPrecondition(f"the order is {order.state.value}, not at the pickup point",
                                         reason=rules.ORDER_NOT_AT_PICKUP_POINT)
            order.complete(self._now(), rules.CONFIRMED_BY_PICKUP)
            await self.orders.save(order)
            await self.pickups.record(merchant_id, order, by, order.completed_at)
            return order

        return await retry.on_conflict(attempt, gave_up="the order changed while confirming the pickup; try again")

    # ---- the leader's dashboard ----------------------------------------------------------

    async def dashboard(self, campaign_id: str) -> Dashboard:
        ctx = context.current()
        member_id = ctx.require_member()
        leader = await self.leaders.of_member(ctx.merchant_id, member_id)
        if leader is None or leader.state is not rules.LeaderState.APPROVED:
            raise NotFound("not a leader of this merchant")
        await self._campaign(ctx.merchant_id, campaign_id)
        orders = await self.community_orders.of_batch(ctx.merchant_id, campaign_id, leader.id)
        picked = sum(1 for o in orders if o.confirmed_by == rules.CONFIRMED_BY_PICKUP)
        waiting = sum(1 for o in orders if o.state is OrderState.DELIVERED)
        return Dashboard(leader=leader, orders=orders,
                         pick_list=rules.pick_lines(l for o in orders if o.state in (OrderState.PAID,)
                                                    for l in o.lines),
                         picked_up=picked, waiting=waiting,
                         commission=rules.leader_commission(orders, leader.member_id))

    # ---- settings ------------------------------------------------------------------------

    async def get_settings(self) -> CommunitySettings:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        return await self.settings.of_merchant(ctx.merchant_id)

    async def update_settings(self, wanted: CommunitySettings) -> CommunitySettings:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        await self.settings.put(ctx.merchant_id, wanted)
        return wanted

    # ---- jobs ----------------------------------------------------------------------------

    async def close_due(self, limit: int = 100) -> int:
        """Records campaigns past their cut-off closed, each by one write on its version:
        with three replicas, one wins and the others lose the compare-and-set."""
        now = self._now()
        closed = 0
        for campaign in await self.campaigns.due_to_close(now, limit):
            if not campaign.close(now):
                continue
            try:
                await self.campaigns.save(campaign)
            except StaleVersion:
                continue
            closed += 1
        return closed

    async def apply_uncollected(self, limit: int = 20) -> int:
        """The merchant's rule for delivered orders nobody collected, once per order:
        REFUND through the refund machinery (one refund per order, keyed by the order);
        KEEP completes it as confirmed automatically (a write on its version). A batch is
        marked done when none of its orders waits any more."""
        now = self._now()
        handled = 0
        for batch in await self.batches.open_for_uncollected(limit):
            settings = await self.settings.of_merchant(batch.merchant_id)
            if not rules.is_uncollected(batch.delivered_at, settings, now):
                continue
            waiting = 0
            for order_id in batch.order_ids:
                order = await self.orders.get(batch.merchant_id, order_id)
                if order is None or order.state is not OrderState.DELIVERED:
                    continue
                if settings.uncollected_action is UncollectedAction.KEEP:
                    if order.complete(now, CONFIRMED_BY_AUTO):
                        try:
                            await self.orders.save(order)
                            handled += 1
                        except StaleVersion:
                            waiting += 1
                elif order.refunded_amount < order.payable:
                    if await self._refund_uncollected(order):
                        handled += 1
                    else:
                        waiting += 1
            if waiting == 0:
                await self.batches.uncollected_done(batch)
        return handled

    async def _refund_uncollected(self, order: Order) -> bool:
        """A full refund of what is left of the order, keyed by the order: every replica
        that tries opens the same refund, executed once."""
        if self.refunds is None:
            return False
        lines = [LineRequest(line_id=l.line_id, quantity=l.units_left) for l in order.lines if l.units_left > 0]
        if not lines:
            return True
        token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=order.merchant_id,
                                                   caller_kind="staff", caller_id="community-uncollected",
                                                   roles=("OPERATOR",)))
        try:
            # The refund's reason is the text the buyer reads (positional: not an error reason word).
            await self.refunds.create(RefundInput(order.id, UNCOLLECTED_REFUND_KEY, lines, UNCOLLECTED_NOTE))
            return True
        except Exception:  # noqa: BLE001 - tried again on the next run
            log.warning("community.uncollected_refund_failed", order_id=order.id, exc_info=True)
            return False
        finally:
            context.reset(token)
