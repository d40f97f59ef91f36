"""Content items and their publishing lifecycle.

The lifecycle runs forward only: DRAFT → SCHEDULED → PUBLISHED → ARCHIVED. A step may be
skipped (publish a draft now, archive an abandoned draft) but never taken back: published
content cannot become a draft again and archived content stays archived. Entering
PUBLISHED stamps the publish time, which is kept from then on.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from siyu_kit.aggregate import Aggregate, Move, StateMachine
from siyu_kit.errors import FailedPrecondition, FieldViolation, Violations
from siyu_kit.ids import is_id

from services.content.domain.personas import check_code

TYPES = ("ARTICLE", "SHORT_POST", "VIDEO")
LIFECYCLE = ("DRAFT", "SCHEDULED", "PUBLISHED", "ARCHIVED")
TITLE_MAX = 120
BODY_MAX = 20_000
PRODUCTS_MAX = 50

# Every state may move to any later one; staying where it is is a repeat (an edit).
MACHINE: StateMachine[str] = StateMachine(
    "content", {status: LIFECYCLE[index + 1:] for index, status in enumerate(LIFECYCLE)},
    refused_reason="STATUS_TRANSITION")


@dataclass(frozen=True)
class ContentFields:
    code: str
    persona_id: str
    type: str  # one of TYPES
    title: str
    body: str = ""
    product_ids: tuple[str, ...] = ()

    def normalized(self) -> "ContentFields":
        return replace(self, title=self.title.strip(), product_ids=tuple(self.product_ids))


@dataclass
class Content(Aggregate):
    """A content item of a merchant, identified by its code; `version` is the one it was
    read at."""
    id: str
    merchant_id: str
    version: int
    fields: ContentFields
    status: str  # one of LIFECYCLE
    published_at_ms: int = 0  # 0 until first published
    updated_ms: int = 0

    @property
    def is_public(self) -> bool:
        return self.status == "PUBLISHED"

    @classmethod
    def create(cls, content_id: str, merchant_id: str, fields: ContentFields, requested_status: str,
               now_ms: int) -> "Content":
        """New content: DRAFT unless another status is asked for."""
        status, published_at = lifecycle_after(None, requested_status, now_ms)
        return cls(id=content_id, merchant_id=merchant_id, version=1, fields=fields, status=status,
                   published_at_ms=published_at, updated_ms=now_ms)

    def revise(self, fields: ContentFields, requested_status: str, now_ms: int) -> bool:
        """Takes the new fields and moves to `requested_status` (empty: stays); refuses a
        move back. False when nothing changes (nothing to save)."""
        status, published_at = lifecycle_after(self, requested_status, now_ms)
        if (fields, status, published_at) == (self.fields, self.status, self.published_at_ms):
            return False
        self.fields, self.status, self.published_at_ms, self.updated_ms = fields, status, published_at, now_ms
        return True


def check_content(f: ContentFields, requested_status: str, v: Violations) -> None:
    """`requested_status` is empty when the caller leaves the status as it is."""
    check_code(f.code, v)
    v.check(is_id(f.persona_id, "per"), "persona_id", "a persona id (per_…)")
    v.check(f.type in TYPES, "type", "one of ARTICLE, SHORT_POST, VIDEO")
    v.check(1 <= len(f.title) <= TITLE_MAX, "title", f"1 to {TITLE_MAX} characters")
    v.check(len(f.body) <= BODY_MAX, "body", f"at most {BODY_MAX} characters")
    v.check(len(f.product_ids) <= PRODUCTS_MAX, "product_ids", f"at most {PRODUCTS_MAX} products")
    seen: set[str] = set()
    for index, product_id in enumerate(f.product_ids):
        if not is_id(product_id, "prd"):
            v.add(f"product_ids[{index}]", "a product id (prd_…)")
        elif product_id in seen:
            v.add(f"product_ids[{index}]", "listed twice")
        seen.add(product_id)
    if requested_status:
        v.check(requested_status in LIFECYCLE, "status", "one of DRAFT, SCHEDULED, PUBLISHED, ARCHIVED")


def can_move(current: str, target: str) -> bool:
    return MACHINE.decide(current, target) is not Move.REFUSE


def lifecycle_after(current: Content | None, requested_status: str, now_ms: int) -> tuple[str, int]:
    """The (status, published_at_ms) a content item has after an upsert asking for
    `requested_status` (empty: DRAFT when new, unchanged otherwise)."""
    if current is None:
        status = requested_status or "DRAFT"
        return status, (now_ms if status == "PUBLISHED" else 0)
    target = requested_status or current.status
    if not can_move(current.status, target):
        raise FailedPrecondition(
            f"content cannot go from {current.status} to {target}", reason=MACHINE.refused_reason,
            violations=[FieldViolation("status", f"{current.status} cannot become {target}")])
    published_at = current.published_at_ms
    if target == "PUBLISHED" and current.status != "PUBLISHED":
        published_at = now_ms
    return target, published_at
