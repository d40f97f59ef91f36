"""What the engagement use cases need from storage. Every method is async; the MongoDB
implementations are in services/content/adapters/engagement_store.py, the in-memory ones
in tests/fakes/engagement.py."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.content.domain.engagement import Comment, EngagementSettings, ShareCode
from services.content.domain.share_opens import ShareCodeWasOpened


@dataclass(frozen=True)
class Counts:
    views: int = 0
    likes: int = 0
    comments: int = 0
    shares: int = 0


@dataclass(frozen=True)
class AuditEntry:
    id: str
    merchant_id: str
    actor_kind: str
    actor_id: str
    action: str
    target_id: str
    before: dict
    after: dict
    at_ms: int


class Reactions(Protocol):
    """Views, likes and the per-content counters they move."""

    async def add_view(self, merchant_id: str, content_id: str, member_id: str, day: str, at_ms: int) -> bool:
        """One conditional insert keyed by (content, member, day); True when it is the
        first view that day, and then view_count moved by one."""

    async def set_like(self, merchant_id: str, content_id: str, member_id: str, liked: bool, at_ms: int) -> bool:
        """Sets the member's like; True only when it changed, and then like_count moved by one."""

    async def bump(self, merchant_id: str, content_id: str, name: str, by: int) -> None:
        """One `$inc` of a content counter ("comments", "shares")."""

    async def counts(self, merchant_id: str, content_ids: list[str]) -> dict[str, Counts]: ...

    async def liked(self, merchant_id: str, content_id: str, member_id: str) -> bool: ...

    async def export_member(self, merchant_id: str, member_id: str) -> tuple[list[dict], list[dict]]:
        """(views, likes) of the member."""

    async def erase_member(self, merchant_id: str, member_id: str) -> list[str]:
        """Deletes the member's views and likes; the content ids whose like they removed."""


class Comments(Protocol):
    async def get(self, merchant_id: str, comment_id: str) -> Comment | None: ...

    async def by_key(self, merchant_id: str, member_id: str, idempotency_key: str) -> Comment | None: ...

    async def add(self, comment: Comment) -> bool:
        """False when the member's idempotency key was taken by another insert first."""

    async def save(self, comment: Comment) -> None:
        """Compare-and-set on the version read; StaleVersion when another writer came first."""

    async def visible_page(self, merchant_id: str, content_id: str, member_id: str, after_id: str,
                           limit: int) -> list[Comment]:
        """Published comments and `member_id`'s own held or hidden ones, newest first."""

    async def review_page(self, merchant_id: str, statuses: tuple[str, ...], after_id: str,
                          limit: int) -> list[Comment]:
        """Comments in these statuses, oldest first (ids above `after_id`)."""

    async def add_report(self, merchant_id: str, comment_id: str, member_id: str, reason: str, at_ms: int) -> bool:
        """One report per member and comment (a unique key); True when new, and then the
        comment's report_count moved by one."""

    async def hide_if_reported(self, merchant_id: str, comment_id: str, threshold: int) -> bool:
        """One conditional update: a PUBLISHED comment with at least `threshold` reports
        becomes HIDDEN. True when this call hid it."""

    async def export_member(self, merchant_id: str, member_id: str) -> tuple[list[dict], list[dict]]:
        """(comments, reports) of the member."""

    async def erase_member(self, merchant_id: str, member_id: str) -> list[tuple[str, str]]:
        """Clears the author and the text of the member's comments (REJECTED, reason
        "author erased") and deletes their reports; (content_id, status before) of each
        comment changed."""


class Settings(Protocol):
    async def get(self, merchant_id: str) -> tuple[EngagementSettings, int]:
        """The merchant's settings and version (defaults and 0 when never set)."""

    async def save(self, merchant_id: str, settings: EngagementSettings, expected_version: int,
                   updated_ms: int) -> bool:
        """Writes version expected_version + 1 if the stored one is still expected_version."""


class Audit(Protocol):
    async def add(self, entry: AuditEntry) -> None: ...


class ShareCodes(Protocol):
    async def get(self, merchant_id: str, code: str) -> ShareCode | None: ...

    async def by_dedup_key(self, dedup_key: str) -> ShareCode | None: ...

    async def add(self, share: ShareCode) -> str:
        """"added", "code_taken" (another code has it: draw again) or "key_taken" (the
        sharer's code for the target today was inserted first: read it)."""

    async def record_open(self, merchant_id: str, code: str, opener: str, member_id: str, day: str,
                          at_ms: int, opened: ShareCodeWasOpened | None = None) -> bool:
        """Logs the open, with `opened` (if any) in the same write's outbox; True when it
        is the opener's first that day, and then click_count moved by one. With a member,
        remembers when they last opened it."""

    async def last_opened_ms(self, merchant_id: str, code: str, member_id: str) -> int:
        """When the member last opened the code; 0 when never."""

    async def export_member(self, merchant_id: str, member_id: str) -> tuple[list[dict], list[dict]]:
        """(share codes the member issued, their opens)."""

    async def erase_member(self, merchant_id: str, member_id: str) -> None:
        """Clears the member as sharer (codes keep working) and deletes their opens."""
