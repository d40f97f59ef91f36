"""In-memory stand-ins for the coupon ports (services.member.application.coupon_ports).

Each method first yields to the event loop, as a real round trip does, and then runs
without awaiting: one method call is one atomic storage command. So `asyncio.gather` of
many claims interleaves them between commands exactly as concurrent requests would, and
the fakes give the storage guarantees the real repositories must give: the unique keys
(merchant, template, member, slot) and (merchant, claim_key), the conditional counter
update on the template, and the version compare-and-set."""
from __future__ import annotations

import asyncio
import copy
import dataclasses
from datetime import datetime

from siyu_kit.aggregate import StaleVersion

from services.member.application.coupon_ports import Claiming, Inserted
from services.member.domain.coupons import (CouponConfig, CouponState, CouponTemplate, GrantJob, GrantState, MemberCoupon,
                                            TemplateState, TemplateStats)
from tests.fakes.store import VersionedStore, require_version


async def _round_trip() -> None:
    await asyncio.sleep(0)


def _copy(aggregate):
    """A copy without pending events (every field of a template or coupon is immutable
    but the state, so a field-by-field copy is as good as a deep one, and faster)."""
    return dataclasses.replace(aggregate)


class FakeCouponTemplates(VersionedStore):
    """Templates by id. `issued` and the claiming entries belong to the counter: `save`
    keeps them as stored, `take_unit` is the one conditional update that changes them."""
    items: dict[str, CouponTemplate]

    def __init__(self):
        super().__init__()
        self.events: list = []
        self.entries: dict[str, dict[str, datetime]] = {}  # template id -> coupon id -> since
        self.takes = 0  # conditional updates sent

    async def get(self, merchant_id: str, template_id: str) -> CouponTemplate | None:
        await _round_trip()
        template = self.items.get(template_id)
        return _copy(template) if template is not None and template.merchant_id == merchant_id else None

    async def add(self, template: CouponTemplate) -> bool:
        await _round_trip()
        if template.id in self.items or (template.creation_key and any(
                (t.merchant_id, t.creation_key) == (template.merchant_id, template.creation_key)
                for t in self.items.values())):
            return False
        self.events.extend(template.pull_events())
        self.items[template.id] = _copy(template)
        self.entries[template.id] = {}
        return True

    async def save(self, template: CouponTemplate) -> None:
        await _round_trip()
        stored = self.items.get(template.id)
        require_version(stored, template)
        if template.total is not None and stored.issued > template.total:
            raise StaleVersion("more coupons were issued meanwhile than the new total")
        events = template.pull_events()
        issued = stored.issued
        self._compare_and_set(template)
        self.items[template.id].issued = issued  # never written by a save
        template.issued = issued
        self.events.extend(events)

    async def page(self, merchant_id: str, state: TemplateState | None, after_id: str,
                   limit: int) -> list[CouponTemplate]:
        await _round_trip()
        rows = sorted((t for t in self.items.values() if t.merchant_id == merchant_id
                       and (state is None or t.state == state) and (not after_id or t.id < after_id)),
                      key=lambda t: t.id, reverse=True)
        return [_copy(r) for r in rows[:limit]]

    async def by_creation_key(self, merchant_id: str, key: str) -> CouponTemplate | None:
        await _round_trip()
        found = next((t for t in self.items.values() if (t.merchant_id, t.creation_key) == (merchant_id, key)), None)
        return _copy(found) if found is not None else None

    async def claimable_page(self, merchant_id: str, after_id: str, limit: int) -> list[CouponTemplate]:
        await _round_trip()
        rows = sorted((t for t in self.items.values() if t.merchant_id == merchant_id
                       and t.state == TemplateState.ACTIVE and t.self_claim and (not after_id or t.id < after_id)),
                      key=lambda t: t.id, reverse=True)
        return [_copy(r) for r in rows[:limit]]

    async def take_unit(self, merchant_id: str, template_id: str, coupon_id: str, now: datetime) -> bool:
        await _round_trip()
        self.takes += 1
        template = self.items.get(template_id)
        if template is None or template.merchant_id != merchant_id:
            return False
        entries = self.entries[template_id]
        if coupon_id in entries:
            return True
        if template.state != TemplateState.ACTIVE or (template.total is not None and template.issued >= template.total):
            return False
        template.issued += 1
        entries[coupon_id] = now
        return True

    async def settle_unit(self, merchant_id: str, template_id: str, coupon_id: str) -> None:
        await _round_trip()
        self.entries.get(template_id, {}).pop(coupon_id, None)

    async def give_back_unit(self, merchant_id: str, template_id: str, coupon_id: str) -> bool:
        await _round_trip()
        entries = self.entries.get(template_id, {})
        if coupon_id not in entries:
            return False
        del entries[coupon_id]
        self.items[template_id].issued -= 1
        return True

    async def claiming_ids(self, merchant_id: str, template_id: str) -> set[str]:
        await _round_trip()
        template = self.items.get(template_id)
        return set(self.entries.get(template_id, {})) if template and template.merchant_id == merchant_id else set()

    async def take_units(self, merchant_id: str, template_id: str, coupon_ids: list[str], now: datetime) -> bool:
        await _round_trip()
        self.takes += 1
        template = self.items.get(template_id)
        if template is None or template.merchant_id != merchant_id or template.state != TemplateState.ACTIVE:
            return False
        entries = self.entries[template_id]
        if any(c in entries for c in coupon_ids) or (
                template.total is not None and template.issued + len(coupon_ids) > template.total):
            return False
        template.issued += len(coupon_ids)
        entries.update({c: now for c in coupon_ids})
        return True

    async def settle_units(self, merchant_id: str, template_id: str, coupon_ids: list[str]) -> None:
        await _round_trip()
        for c in coupon_ids:
            self.entries.get(template_id, {}).pop(c, None)

    async def claiming(self, before: datetime, limit: int) -> list[Claiming]:
        await _round_trip()
        rows = [Claiming(self.items[t].merchant_id, t, c, since) for t, entries in self.entries.items()
                for c, since in entries.items() if since < before]
        return rows[:limit]


class FakeMemberCoupons:
    """Member coupons by id, with the two unique keys of the real collection."""

    def __init__(self):
        self.items: dict[str, MemberCoupon] = {}
        self.events: list = []
        self.saves = 0
        self.writes_by_others = 0
        # The unique keys: (merchant, claim_key) -> coupon id; (merchant, template, member) -> slot -> coupon id.
        self.keys: dict[tuple[str, str], str] = {}
        self.slots: dict[tuple[str, str, str], dict[int, str]] = {}

    def _mine(self, merchant_id: str, coupon_id: str) -> MemberCoupon | None:
        coupon = self.items.get(coupon_id)
        return coupon if coupon is not None and coupon.merchant_id == merchant_id else None

    async def get(self, merchant_id: str, coupon_id: str) -> MemberCoupon | None:
        await _round_trip()
        coupon = self._mine(merchant_id, coupon_id)
        return _copy(coupon) if coupon is not None else None

    async def by_claim_key(self, merchant_id: str, claim_key: str) -> MemberCoupon | None:
        await _round_trip()
        coupon_id = self.keys.get((merchant_id, claim_key))
        return _copy(self.items[coupon_id]) if coupon_id else None

    async def slots_taken(self, merchant_id: str, template_id: str, member_id: str) -> set[int]:
        await _round_trip()
        return set(self.slots.get((merchant_id, template_id, member_id), {}))

    async def held_counts(self, merchant_id: str, member_id: str, template_ids: list[str]) -> dict[str, int]:
        await _round_trip()
        return {t: len(self.slots.get((merchant_id, t, member_id), {})) for t in template_ids
                if self.slots.get((merchant_id, t, member_id))}

    async def insert(self, coupon: MemberCoupon) -> Inserted:
        await _round_trip()
        if (coupon.merchant_id, coupon.claim_key) in self.keys:
            return Inserted.KEY_USED
        slots = self.slots.setdefault((coupon.merchant_id, coupon.template_id, coupon.member_id), {})
        if coupon.slot in slots:
            return Inserted.SLOT_TAKEN
        self.keys[(coupon.merchant_id, coupon.claim_key)] = coupon.id
        slots[coupon.slot] = coupon.id
        self.events.extend(coupon.pull_events())
        self.items[coupon.id] = _copy(coupon)
        return Inserted.OK

    async def of_members(self, merchant_id: str, template_id: str,
                         member_ids: list[str]) -> dict[str, list[MemberCoupon]]:
        await _round_trip()
        out: dict[str, list[MemberCoupon]] = {}
        for c in self.items.values():
            if (c.merchant_id, c.template_id) == (merchant_id, template_id) and c.member_id in member_ids:
                out.setdefault(c.member_id, []).append(_copy(c))
        return out

    async def insert_many(self, coupons: list[MemberCoupon]) -> set[str]:
        await _round_trip()
        self.bulk_inserts = getattr(self, "bulk_inserts", 0) + 1
        inserted = set()
        for coupon in coupons:
            if (coupon.merchant_id, coupon.claim_key) in self.keys:
                continue
            slots = self.slots.setdefault((coupon.merchant_id, coupon.template_id, coupon.member_id), {})
            if coupon.slot in slots:
                continue
            self.keys[(coupon.merchant_id, coupon.claim_key)] = coupon.id
            slots[coupon.slot] = coupon.id
            coupon.pull_events()
            self.items[coupon.id] = _copy(coupon)
            inserted.add(coupon.id)
        return inserted

    async def confirm_many(self, coupons: list[MemberCoupon]) -> set[str]:
        await _round_trip()
        for coupon in coupons:
            stored = self.items.get(coupon.id)
            if stored is None or stored.version != coupon.version:
                coupon.pull_events()
                continue
            coupon.version = coupon.next_version
            self.events.extend(coupon.pull_events())
            self.items[coupon.id] = _copy(coupon)
            self.saves += 1
        return {c.id for c in coupons if c.id in self.items and self.items[c.id].state != CouponState.CLAIMING}

    async def save(self, coupon: MemberCoupon) -> None:
        await _round_trip()
        stored = self.items.get(coupon.id)
        if stored is not None and self.writes_by_others:
            self.writes_by_others -= 1
            stored.version += 1
        require_version(stored, coupon)
        coupon.version = coupon.next_version
        self.events.extend(coupon.pull_events())
        self.items[coupon.id] = _copy(coupon)
        self.saves += 1

    async def drop_claiming(self, merchant_id: str, coupon_id: str) -> bool:
        await _round_trip()
        coupon = self._mine(merchant_id, coupon_id)
        if coupon is None or coupon.state != CouponState.CLAIMING:
            return False
        self.forget(coupon_id)
        return True

    def forget(self, coupon_id: str) -> None:
        """Deletes a coupon and its unique keys."""
        coupon = self.items.pop(coupon_id)
        del self.keys[(coupon.merchant_id, coupon.claim_key)]
        del self.slots[(coupon.merchant_id, coupon.template_id, coupon.member_id)][coupon.slot]

    async def of_member(self, merchant_id: str, member_id: str, states: tuple[CouponState, ...], after_id: str,
                        limit: int) -> list[MemberCoupon]:
        await _round_trip()
        rows = sorted((c for c in self.items.values() if (c.merchant_id, c.member_id) == (merchant_id, member_id)
                       and c.state in states and (not after_id or c.id < after_id)), key=lambda c: c.id, reverse=True)
        return [_copy(r) for r in rows[:limit]]

    async def due_to_expire(self, now: datetime, after_id: str, limit: int) -> list[MemberCoupon]:
        await _round_trip()
        rows = sorted((c for c in self.items.values() if c.state == CouponState.AVAILABLE and c.valid_until <= now
                       and c.id > after_id), key=lambda c: c.id)
        return [_copy(r) for r in rows[:limit]]

    async def stats(self, merchant_id: str, template_id: str) -> TemplateStats:
        await _round_trip()
        mine = [c for c in self.items.values() if (c.merchant_id, c.template_id) == (merchant_id, template_id)]
        used = [c for c in mine if c.state == CouponState.USED]
        return TemplateStats(locked=sum(c.state == CouponState.LOCKED for c in mine), used=len(used),
                             expired=sum(c.state == CouponState.EXPIRED for c in mine),
                             discount_given=sum(c.discount for c in used), gmv=sum(c.order_amount for c in used))

    async def overdue_locks(self, before: datetime, limit: int) -> list[MemberCoupon]:
        await _round_trip()
        rows = [c for c in self.items.values() if c.state == CouponState.LOCKED and c.locked_until < before]
        return [_copy(r) for r in rows[:limit]]

    async def stale_claiming(self, before: datetime, limit: int) -> list[MemberCoupon]:
        await _round_trip()
        rows = [c for c in self.items.values() if c.state == CouponState.CLAIMING and c.claimed_at < before]
        return [_copy(r) for r in rows[:limit]]

    def of_template(self, template_id: str, *states: CouponState) -> list[MemberCoupon]:
        """For assertions: the template's coupons (in those states, or any)."""
        return [c for c in self.items.values() if c.template_id == template_id and (not states or c.state in states)]


class FakeGrantJobs(VersionedStore):
    items: dict[str, GrantJob]

    def __init__(self):
        super().__init__()
        self.events: list = []

    async def get(self, merchant_id: str, job_id: str) -> GrantJob | None:
        await _round_trip()
        job = self.items.get(job_id)
        return copy.deepcopy(job) if job is not None and job.merchant_id == merchant_id else None

    async def by_key(self, merchant_id: str, key: str) -> GrantJob | None:
        await _round_trip()
        return next((copy.deepcopy(j) for j in self.items.values() if (j.merchant_id, j.key) == (merchant_id, key)),
                    None)

    async def add(self, job: GrantJob) -> bool:
        await _round_trip()
        if any((j.merchant_id, j.key) == (job.merchant_id, job.key) for j in self.items.values()):
            return False
        self.events.extend(job.pull_events())
        self.items[job.id] = copy.deepcopy(job)
        return True

    async def save(self, job: GrantJob) -> None:
        await _round_trip()
        events = job.pull_events()
        self._compare_and_set(job)
        self.events.extend(events)

    async def running(self, limit: int) -> list[GrantJob]:
        await _round_trip()
        rows = sorted((j for j in self.items.values() if j.state != GrantState.DONE), key=lambda j: j.created_at)
        return copy.deepcopy(rows[:limit])


class FakeCouponSettings:
    def __init__(self, return_on_refund: bool = True):
        self.switch: dict[str, bool] = {}
        self.gifts: dict[str, str] = {}
        self.default = return_on_refund

    async def return_on_refund(self, merchant_id: str) -> bool:
        await _round_trip()
        return self.switch.get(merchant_id, self.default)

    async def get(self, merchant_id: str) -> CouponConfig:
        await _round_trip()
        return CouponConfig(self.switch.get(merchant_id, self.default), self.gifts.get(merchant_id, ""))

    async def put(self, merchant_id: str, config: CouponConfig) -> None:
        await _round_trip()
        self.switch[merchant_id] = config.return_on_refund
        self.gifts[merchant_id] = config.new_member_template_id
