"""In-memory stand-ins for the referral ports (services.member.application.referral_ports)."""
from __future__ import annotations

import asyncio
import copy
from dataclasses import replace
from datetime import datetime

from siyu_kit.aggregate import StaleVersion

from services.member.domain.referral import STATE_REWARDING, Referral, ReferralSettings


class FakeInviteCodes:
    def __init__(self):
        self.by_member: dict[tuple[str, str], str] = {}
        self.by_code: dict[tuple[str, str], str] = {}
        self.forced: list[str] = []  # codes the next adds try instead of the random one

    async def code_of(self, merchant_id: str, member_id: str) -> str | None:
        return self.by_member.get((merchant_id, member_id))

    async def member_of(self, merchant_id: str, code: str) -> str | None:
        return self.by_code.get((merchant_id, code))

    async def add(self, merchant_id: str, member_id: str, code: str) -> bool:
        if self.forced:
            code = self.forced.pop(0)
        if (merchant_id, member_id) in self.by_member or (merchant_id, code) in self.by_code:
            return False
        self.by_member[(merchant_id, member_id)] = code
        self.by_code[(merchant_id, code)] = member_id
        return True


class FakeReferrals:
    """Referrals by id, one per invitee; `events` keeps the domain events each write stored."""

    def __init__(self):
        self.items: dict[str, Referral] = {}
        self.events: list = []

    async def of_invitee(self, merchant_id: str, invitee_id: str) -> Referral | None:
        for r in self.items.values():
            if (r.merchant_id, r.invitee_id) == (merchant_id, invitee_id):
                return copy.deepcopy(r)
        return None

    async def add(self, referral: Referral) -> bool:
        if await self.of_invitee(referral.merchant_id, referral.invitee_id) is not None:
            return False
        self.events.extend(referral.pull_events())
        self.items[referral.id] = copy.deepcopy(referral)
        return True

    async def claim_first_order(self, merchant_id: str, referral_id: str, order_id: str, terms: ReferralSettings,
                                completed_at: datetime) -> bool:
        stored = self.items.get(referral_id)
        if stored is None or stored.merchant_id != merchant_id or stored.first_order_id:
            return False
        self.items[referral_id] = replace(stored, first_order_id=order_id, terms=terms, state=STATE_REWARDING,
                                          completed_at=completed_at, version=stored.version + 1)
        return True

    async def save(self, referral: Referral) -> None:
        stored = self.items.get(referral.id)
        if stored is None or stored.merchant_id != referral.merchant_id or stored.version != referral.version:
            raise StaleVersion(f"{referral.id} changed since it was read")
        self.events.extend(referral.pull_events())
        referral.version += 1
        self.items[referral.id] = copy.deepcopy(referral)

    async def of_inviter(self, merchant_id: str, inviter_id: str, before_id: str, limit: int) -> list[Referral]:
        rows = sorted((r for r in self.items.values() if (r.merchant_id, r.inviter_id) == (merchant_id, inviter_id)
                       and (not before_id or r.id < before_id)), key=lambda r: r.id, reverse=True)
        return [copy.deepcopy(r) for r in rows[:limit]]


class FakeCaps:
    """The month counters; `take` yields between its read and its conditional write, as a
    round trip to the database would, and the write is the guarded one."""

    def __init__(self):
        self.counters: dict[tuple[str, str, str], dict] = {}

    async def take(self, merchant_id: str, inviter_id: str, month: str, referral_id: str, cap: int) -> bool:
        counter = self.counters.setdefault((merchant_id, inviter_id, month), {"count": 0, "taken": set()})
        await asyncio.sleep(0)
        if counter["count"] < cap and referral_id not in counter["taken"]:  # the update's filter
            counter["count"] += 1
            counter["taken"].add(referral_id)
            return True
        await asyncio.sleep(0)
        return referral_id in counter["taken"]


class FakeGuard:
    def __init__(self):
        self.entries: dict[tuple[str, str], str] = {}

    async def holders(self, merchant_id: str, hashes: list[str]) -> set[str]:
        return {self.entries[(merchant_id, h)] for h in hashes if (merchant_id, h) in self.entries}

    async def add(self, merchant_id: str, hashes: list[str], member_id: str) -> None:
        for h in hashes:
            self.entries.setdefault((merchant_id, h), member_id)


class FakeReferralSettings:
    def __init__(self):
        self.items: dict[str, ReferralSettings] = {}

    async def get(self, merchant_id: str) -> ReferralSettings:
        return self.items.get(merchant_id, ReferralSettings())

    async def put(self, merchant_id: str, settings: ReferralSettings) -> None:
        self.items[merchant_id] = settings


class FakeCouponRewards:
    """Coupons issued once per (member, template, cause); `templates` are the merchant's,
    `left` how many each may still issue; `crash_after` makes that many issues raise
    after issuing (a process dying between the coupon and the referral's save)."""

    def __init__(self):
        self.templates: set[tuple[str, str]] = set()
        self.left: dict[str, int] = {}
        self.issued: dict[tuple[str, str, str, str], str] = {}
        self.states: dict[str, str] = {}  # coupon id → state when not AVAILABLE (USED, REVOKED, …)
        self.crash_after = 0

    async def reward(self, merchant_id: str, member_id: str, template_id: str, cause_id: str) -> tuple[str, str]:
        if (merchant_id, template_id) not in self.templates:
            return "", "TEMPLATE_NOT_FOUND"
        key = (merchant_id, member_id, template_id, cause_id)
        if key not in self.issued:
            if self.left.get(template_id, 1) <= 0:
                return "", "COUPON_SOLD_OUT"
            self.left[template_id] = self.left.get(template_id, 1_000_000) - 1
            self.issued[key] = f"mcp_{len(self.issued):026d}"
            if self.crash_after:
                self.crash_after -= 1
                raise ConnectionError("the process died after issuing the coupon")
        return self.issued[key], ""

    async def has_template(self, merchant_id: str, template_id: str) -> bool:
        return (merchant_id, template_id) in self.templates

    async def revoke(self, merchant_id: str, member_id: str, coupon_id: str) -> str:
        if not any(k[0] == merchant_id and k[1] == member_id and c == coupon_id for k, c in self.issued.items()):
            return ""
        if self.states.get(coupon_id, "AVAILABLE") == "AVAILABLE":
            self.states[coupon_id] = "REVOKED"
        return self.states[coupon_id]
