"""The coupon use cases over in-memory ports with a clock the test moves: the one world
the coupon unit tests build, and the callers and templates they start from."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from services.member.application.coupons import CouponUseCases
from services.member.domain.coupons import CouponKind, CouponRule, TemplateDraft, Validity
from siyu_kit.ids import new_id
from tests.fakes.coupons import FakeCouponSettings, FakeCouponTemplates, FakeGrantJobs, FakeMemberCoupons
from tests.fakes.member import FakeAuditLog, FakeMembers, caller

M = "mer_1"
OTHER = "mer_2"
START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
RULE = CouponRule(CouponKind.AMOUNT_OFF, threshold=10_000, amount_off=1_000)


class Clock:
    def __init__(self):
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class CouponWorld:
    templates: FakeCouponTemplates = field(default_factory=FakeCouponTemplates)
    coupons: FakeMemberCoupons = field(default_factory=FakeMemberCoupons)
    grants: FakeGrantJobs = field(default_factory=FakeGrantJobs)
    settings: FakeCouponSettings = field(default_factory=FakeCouponSettings)
    audit: FakeAuditLog = field(default_factory=FakeAuditLog)
    clock: Clock = field(default_factory=Clock)
    # Only with members does a grant check that each member exists.
    members: FakeMembers | None = None
    cases: CouponUseCases = field(init=False)

    def __post_init__(self):
        self.cases = CouponUseCases(self.templates, self.coupons, self.grants, self.settings, members=self.members,
                                    clock=self.clock, audit=self.audit)


def coupon_world(*, with_members: bool = False) -> CouponWorld:
    return CouponWorld(members=FakeMembers() if with_members else None)


def draft(**kw) -> TemplateDraft:
    values = dict(name="Spring 100-10", rule=RULE, validity=Validity(days=7), total=100, per_member_limit=1)
    values.update(kw)
    return TemplateDraft(**values)


def operator(merchant: str = M, role: str = "OPERATOR"):
    return caller(merchant, staff_id="stf_op", roles=(role,))


def member(member_id: str = "mem_1", merchant: str = M):
    return caller(merchant, channel="MINI_PROGRAM", member_id=member_id)


def order_service(merchant: str = M):
    return caller(merchant, service="order")


async def active(w: CouponWorld, **kw) -> str:
    """A template of `draft(**kw)`, created and activated by an operator of M."""
    with operator():
        template = await w.cases.create_template(draft(**kw), new_id("k"))
        await w.cases.activate(template.id)
    return template.id
