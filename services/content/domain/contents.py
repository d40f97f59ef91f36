"""Content items and their publishing lifecycle.

The lifecycle runs forward only: DRAFT → SCHEDULED → PUBLISHED → ARCHIVED. A step may be
skipped (publish a draft now, archive an abandoned draft) but never taken back: published
content cannot become a draft again and archived content stays archived. Entering
PUBLISHED stamps the publish time, which is kept from then on.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from siyu_kit.errors import FailedPrecondition, FieldViolation, Violations
from siyu_kit.ids import is_id

from services.content.domain.personas import check_code

TYPES = ("ARTICLE", "SHORT_POST", "VIDEO")
LIFECYCLE = ("DRAFT", "SCHEDULED", "PUBLISHED", "ARCHIVED")
TITLE_MAX = 120
BODY_MAX = 20_000
PRODUCTS_MAX = 50


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


@dataclass(frozen=True)
class Content:
    content_id: str
    version: int
    fields: ContentFields
    status: str  # one of LIFECYCLE
    published_at_ms: int = 0  # 0 until first published

    @property
    def is_public(self) -> bool:
        return self.status == "PUBLISHED"


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
    return LIFECYCLE.index(target) >= LIFECYCLE.index(current)


def lifecycle_after(current: Content | None, requested_status: str, now_ms: int) -> tuple[str, int]:
    """The (status, published_at_ms) a content item has after an upsert asking for
    `requested_status` (empty: DRAFT when new, unchanged otherwise)."""
    if current is None:
        status = requested_status or "DRAFT"
        return status, (now_ms if status == "PUBLISHED" else 0)
    target = requested_status or current.status
    if not can_move(current.status, target):
        raise FailedPrecondition(
            f"content cannot go from {current.status} to {target}", reason="ILLEGAL_STATUS_TRANSITION",
            violations=[FieldViolation("status", f"{current.status} cannot become {target}")])
    published_at = current.published_at_ms
    if target == "PUBLISHED" and current.status != "PUBLISHED":
        published_at = now_ms
    return target, published_at
