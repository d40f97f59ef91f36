"""What the coupon use cases need from storage. Every method is async; implementations
live outside the application layer and are wired in at start-up.

Exactness under races (a coupon grab: thousands of members, a hundred coupons) rests on
two storage guarantees, never on counting and then inserting:

1. The per-member limit: a member coupon holds a slot n in 1..per_member_limit, and
   (merchant, template, member, slot) is a UNIQUE key. A claim inserts its coupon (in
   state CLAIMING) into the first free slot; a duplicate-key error means another claim
   took that slot first, and the claim tries the next. Reading which slots are taken is
   only a hint of where to start: the unique key decides.
2. The total quantity: a claim that holds its slot takes one unit from the template by
   ONE conditional atomic update,
   `update_one({_id, merchant_id, state: "ACTIVE", issued: {$lt: total}` (no `issued`
   condition when unlimited) `, "claiming.<coupon id>": {$exists: false}},
   {$inc: {issued: 1}, $set: {"claiming.<coupon id>": now}})`; no match means sold out
   (or no longer active), and the claim deletes its CLAIMING coupon, freeing the slot.
   Then the coupon becomes AVAILABLE (a versioned save) and the template's claiming entry
   is removed (`$unset`).

A unit is thus never taken by a claim that the per-member limit refuses, so when demand
exceeds the total every unit ends up issued. A crash part way leaves either a CLAIMING
coupon without a unit (no claiming entry: deleted by the recovery job once older than a
minute) or a claiming entry (the unit was taken: the job confirms the coupon, or gives
the unit back with `{$inc: {issued: -1}, $unset: claiming.<id>}` in one conditional
update when the coupon is gone). `tests/fakes/coupons.py` implements exactly this.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from services.member.domain.coupons import (CouponConfig, CouponState, CouponTemplate, GrantJob, MemberCoupon, TemplateState,
                                            TemplateStats)


class Inserted(str, Enum):
    OK = "OK"
    SLOT_TAKEN = "SLOT_TAKEN"  # (template, member, slot) exists: try the next slot
    KEY_USED = "KEY_USED"  # (merchant, claim_key) exists: the claim was made before


@dataclass(frozen=True)
class Claiming:
    """A unit the template handed out whose coupon was not confirmed yet (recovery)."""
    merchant_id: str
    template_id: str
    coupon_id: str
    since: datetime


class CouponTemplateRepository(Protocol):
    async def get(self, merchant_id: str, template_id: str) -> CouponTemplate | None:
        """With `issued` as stored now."""

    async def add(self, template: CouponTemplate) -> bool:
        """Stores a new template with its events; False when the id or its creation key
        exists."""

    async def save(self, template: CouponTemplate) -> None:
        """Writes the template's own fields and events on the version it was read at;
        never `issued` or the claiming entries (the counter's). A lowered total carries
        `issued: {$lte: total}` in the filter. Raises StaleVersion when nothing matched."""

    async def page(self, merchant_id: str, state: TemplateState | None, after_id: str,
                   limit: int) -> list[CouponTemplate]:
        """Newest first (ids below `after_id` when given)."""

    async def by_creation_key(self, merchant_id: str, key: str) -> CouponTemplate | None:
        """The template created with this idempotency key ((merchant, key) is unique)."""

    async def claimable_page(self, merchant_id: str, after_id: str, limit: int) -> list[CouponTemplate]:
        """ACTIVE self-claim templates, newest first (ids below `after_id` when given); the
        claim window and what is left are the caller's to check."""

    async def take_unit(self, merchant_id: str, template_id: str, coupon_id: str, now: datetime) -> bool:
        """The ONE conditional atomic update above: True when a unit was taken for the
        coupon (or had been taken for it already); False when none is left or the
        template is not ACTIVE."""

    async def settle_unit(self, merchant_id: str, template_id: str, coupon_id: str) -> None:
        """Removes the coupon's claiming entry once the coupon is confirmed."""

    async def give_back_unit(self, merchant_id: str, template_id: str, coupon_id: str) -> bool:
        """Recovery: `$inc issued -1` and `$unset` the entry, in one update conditional on
        the entry being there; False when it was not (given back already)."""

    async def claiming(self, before: datetime, limit: int) -> list[Claiming]:
        """Claiming entries older than `before`, any merchant."""

    # ---- a grant's chunk: the same counter, several units per update ----
    async def claiming_ids(self, merchant_id: str, template_id: str) -> set[str]:
        """The coupon ids of the template's claiming entries now."""

    async def take_units(self, merchant_id: str, template_id: str, coupon_ids: list[str], now: datetime) -> bool:
        """`take_unit` for several coupons at once: ONE conditional update adding
        len(coupon_ids) to `issued` with an entry each, guarded by the state, the total as
        read, `issued <= total - n` when the total is bounded and none of the entries
        existing. False when it did not apply (the caller goes one unit at a time)."""

    async def settle_units(self, merchant_id: str, template_id: str, coupon_ids: list[str]) -> None:
        """`settle_unit` for each coupon, in one write."""


class MemberCouponRepository(Protocol):
    async def get(self, merchant_id: str, coupon_id: str) -> MemberCoupon | None: ...

    async def by_claim_key(self, merchant_id: str, claim_key: str) -> MemberCoupon | None: ...

    async def slots_taken(self, merchant_id: str, template_id: str, member_id: str) -> set[int]:
        """A hint only (which slots hold a coupon now); the unique key decides."""

    async def held_counts(self, merchant_id: str, member_id: str, template_ids: list[str]) -> dict[str, int]:
        """How many coupons (slots, in any state) the member holds of each template."""

    async def insert(self, coupon: MemberCoupon) -> Inserted:
        """Inserts a CLAIMING coupon under the unique keys (merchant, template, member,
        slot) and (merchant, claim_key)."""

    async def save(self, coupon: MemberCoupon) -> None:
        """The change and its events on the version it was read at; StaleVersion on a lost race."""

    async def drop_claiming(self, merchant_id: str, coupon_id: str) -> bool:
        """Deletes the coupon only while it is CLAIMING, freeing its slot."""

    async def of_member(self, merchant_id: str, member_id: str, states: tuple[CouponState, ...], after_id: str,
                        limit: int) -> list[MemberCoupon]:
        """The member's coupons in those states, newest first (ids below `after_id`)."""

    async def due_to_expire(self, now: datetime, after_id: str, limit: int) -> list[MemberCoupon]:
        """AVAILABLE coupons whose validity ended by `now`, any merchant, by id."""

    async def stats(self, merchant_id: str, template_id: str) -> TemplateStats:
        """One aggregation over the template's coupons: counts by state, and the sums of
        `discount` and `order_amount` of the USED ones (`issued` is left 0: the template's
        counter is the number issued)."""

    async def overdue_locks(self, before: datetime, limit: int) -> list[MemberCoupon]:
        """LOCKED coupons whose `locked_until` is before `before`, any merchant."""

    async def stale_claiming(self, before: datetime, limit: int) -> list[MemberCoupon]:
        """CLAIMING coupons inserted before `before`, any merchant."""

    # ---- a grant's chunk ----
    async def of_members(self, merchant_id: str, template_id: str,
                         member_ids: list[str]) -> dict[str, list[MemberCoupon]]:
        """The template's coupons of each of these members (absent: none), in one read."""

    async def insert_many(self, coupons: list[MemberCoupon]) -> set[str]:
        """Inserts CLAIMING coupons in one unordered write; the ids inserted (a coupon whose
        claim key or slot is held already is not)."""

    async def confirm_many(self, coupons: list[MemberCoupon]) -> set[str]:
        """Saves the confirmation each coupon recorded (with its events), each under its
        version, in one write; the ids among them that are no longer CLAIMING afterwards
        (confirmed by this write or by another)."""


class GrantJobRepository(Protocol):
    async def get(self, merchant_id: str, job_id: str) -> GrantJob | None: ...

    async def by_key(self, merchant_id: str, key: str) -> GrantJob | None: ...

    async def add(self, job: GrantJob) -> bool:
        """False when the merchant has a job with its key (unique)."""

    async def save(self, job: GrantJob) -> None:
        """Compare-and-set on the version; StaleVersion when another run saved first."""

    async def running(self, limit: int) -> list[GrantJob]:
        """Jobs not DONE, any merchant, oldest first: the job runner resumes them."""


class GrantAudience(Protocol):
    """Who a grant job gives to, a page at a time. A list of member ids is one audience;
    a segment (next issue) is another, with its own cursor."""

    async def page(self, job: GrantJob, cursor: str, limit: int) -> tuple[list[str], str, bool]:
        """Member ids after `cursor` (empty: from the start), the cursor after them, and
        whether the audience ends there."""


class CouponSettings(Protocol):
    async def return_on_refund(self, merchant_id: str) -> bool:
        """The merchant's switch: a fully refunded unshipped order gives its coupon back."""

    async def get(self, merchant_id: str) -> CouponConfig:
        """The merchant's settings; the defaults when it never set them."""

    async def put(self, merchant_id: str, config: CouponConfig) -> None:
        """Replaces the merchant's settings."""
