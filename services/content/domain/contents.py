"""Content items and their publishing lifecycle.

The lifecycle runs forward only: DRAFT → SCHEDULED → PUBLISHED → ARCHIVED. A step may be
skipped (publish a draft now, archive an abandoned draft) but never taken back: published
content cannot become a draft again and archived content stays archived. Entering
PUBLISHED stamps the publish time, which is kept from then on, and records
ContentWasPublished. SCHEDULED content carries a publish_at in the future; the publishing
job moves it to PUBLISHED once that time has come (`publish_due`), on the version it read,
so of several replicas exactly one succeeds.

Members see PUBLISHED content only, and only on the channels it is visible on (every
channel when none is named).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from siyu_kit.aggregate import Aggregate, Move, StateMachine
from siyu_kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, Violations
from siyu_kit.ids import is_id

from services.content.domain.personas import check_code

TYPES = ("ARTICLE", "SHORT_POST", "VIDEO")
LIFECYCLE = ("DRAFT", "SCHEDULED", "PUBLISHED", "ARCHIVED")
TITLE_MAX = 120
BODY_MAX = 20_000
PRODUCTS_MAX = 50
MEDIA_MAX = 20
URL_MAX = 1024
TOPICS_MAX = 10
TOPIC_MAX = 20
CHANNELS = ("MINI_PROGRAM", "H5", "LIVE")
# As the contract declares it: no white space or control characters, by either dialect.
_URL = re.compile(r"^https?://[^\s\x00-\x20\x7f-\x9f]+$")
_TOPIC = re.compile(r"^[^\s#][^#]*$")

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
    media_urls: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()  # of CHANNELS; empty: every channel
    publish_at_ms: int = 0  # when SCHEDULED content is published; 0: not scheduled

    def normalized(self) -> "ContentFields":
        return replace(self, title=self.title.strip(), product_ids=tuple(self.product_ids),
                       media_urls=tuple(u.strip() for u in self.media_urls),
                       topics=tuple(t.strip() for t in self.topics),
                       channels=tuple(sorted(set(self.channels))))

    @property
    def visible_on(self) -> tuple[str, ...]:
        """The channels members see it on."""
        return self.channels or CHANNELS


@dataclass(frozen=True)
class ContentWasPublished:
    content_id: str
    at_ms: int


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

    def visible_to(self, channel: str) -> bool:
        """Whether a member on `channel` sees it (an internal call without a channel sees
        what any channel sees)."""
        return self.is_public and (not channel or channel in self.fields.visible_on)

    @property
    def feed_key(self) -> str:
        """The position in feeds and persona pages, newest last in string order: the
        publish time then the id, so two items published in the same millisecond still
        have one order. Empty unless published."""
        return feed_key(self.published_at_ms, self.id) if self.is_public else ""

    @classmethod
    def create(cls, content_id: str, merchant_id: str, fields: ContentFields, requested_status: str,
               now_ms: int) -> "Content":
        """New content: DRAFT unless another status is asked for."""
        status, published_at = lifecycle_after(None, requested_status, now_ms)
        check_schedule(status, fields.publish_at_ms, now_ms, was_scheduled_at=None)
        content = cls(id=content_id, merchant_id=merchant_id, version=1, fields=fields, status=status,
                      published_at_ms=published_at, updated_ms=now_ms)
        if status == "PUBLISHED":
            content.record(ContentWasPublished(content_id, now_ms))
        return content

    def revise(self, fields: ContentFields, requested_status: str, now_ms: int) -> bool:
        """Takes the new fields and moves to `requested_status` (empty: stays); refuses a
        move back. False when nothing changes (nothing to save)."""
        status, published_at = lifecycle_after(self, requested_status, now_ms)
        check_schedule(status, fields.publish_at_ms, now_ms,
                       was_scheduled_at=self.fields.publish_at_ms if self.status == "SCHEDULED" else None)
        if (fields, status, published_at) == (self.fields, self.status, self.published_at_ms):
            return False
        newly_published = status == "PUBLISHED" and self.status != "PUBLISHED"
        self.fields, self.status, self.published_at_ms, self.updated_ms = fields, status, published_at, now_ms
        if newly_published:
            self.record(ContentWasPublished(self.id, now_ms))
        return True

    def publish_due(self, now_ms: int) -> bool:
        """The publishing job's move: SCHEDULED content whose publish_at has come becomes
        PUBLISHED now. False (nothing to save) for anything else."""
        if self.status != "SCHEDULED" or not 0 < self.fields.publish_at_ms <= now_ms:
            return False
        self.status, self.published_at_ms, self.updated_ms = "PUBLISHED", now_ms, now_ms
        self.record(ContentWasPublished(self.id, now_ms))
        return True


def feed_key(published_at_ms: int, content_id: str) -> str:
    return f"{published_at_ms:015d}:{content_id}"


def check_schedule(status: str, publish_at_ms: int, now_ms: int, was_scheduled_at: int | None) -> None:
    """SCHEDULED needs a publish time in the future; an edit of scheduled content that keeps
    the time it had is accepted even once that time has passed (the job is about to run)."""
    if status != "SCHEDULED":
        return
    if publish_at_ms <= 0:
        raise InvalidArgument("scheduled content needs a publish time", reason="INVALID_FIELDS",
                              violations=[FieldViolation("publish_at", "required when the status is SCHEDULED")])
    if publish_at_ms <= now_ms and publish_at_ms != was_scheduled_at:
        raise InvalidArgument("the publish time has passed", reason="INVALID_FIELDS",
                              violations=[FieldViolation("publish_at", "must be in the future")])


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
    v.check(len(f.media_urls) <= MEDIA_MAX, "media_urls", f"at most {MEDIA_MAX}")
    for index, url in enumerate(f.media_urls):
        v.check(len(url) <= URL_MAX and bool(_URL.match(url)), f"media_urls[{index}]",
                f"an http(s) URL of at most {URL_MAX} characters")
    v.check(len(f.topics) <= TOPICS_MAX, "topics", f"at most {TOPICS_MAX}")
    for index, topic in enumerate(f.topics):
        v.check(1 <= len(topic) <= TOPIC_MAX and bool(_TOPIC.match(topic)), f"topics[{index}]",
                f"1 to {TOPIC_MAX} characters, without #")
    for index, channel in enumerate(f.channels):
        v.check(channel in CHANNELS, f"channels[{index}]", "one of " + ", ".join(CHANNELS))
    v.check(f.publish_at_ms >= 0, "publish_at", "a time after 1970")


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
