"""In-memory stand-ins for the engagement ports (services.content.application.engagement_ports),
with the same unique keys and conditional moves as the MongoDB store."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

from siyu_kit.aggregate import StaleVersion

from services.content.application.engagement_ports import AuditEntry, Counts
from services.content.domain.engagement import (HELD, HIDDEN, PUBLISHED, REJECTED, Comment, EngagementSettings,
                                                ShareCode)


@dataclass
class FakeReactions:
    views: dict[str, dict] = field(default_factory=dict)  # "<merchant>:<content>:<member>:<day>"
    likes: dict[str, dict] = field(default_factory=dict)  # "<merchant>:<content>:<member>"
    stats: dict[str, dict[str, int]] = field(default_factory=dict)  # content id → counters

    async def add_view(self, merchant_id, content_id, member_id, day, at_ms) -> bool:
        key = f"{merchant_id}:{content_id}:{member_id}:{day}"
        if key in self.views:
            return False
        self.views[key] = {"merchant_id": merchant_id, "member_id": member_id, "content_id": content_id,
                           "day": day, "at_ms": at_ms}
        await self.bump(merchant_id, content_id, "views", 1)
        return True

    async def set_like(self, merchant_id, content_id, member_id, liked, at_ms) -> bool:
        key = f"{merchant_id}:{content_id}:{member_id}"
        current = self.likes.get(key)
        if (current["liked"] if current else False) == liked:
            return False
        self.likes[key] = {"merchant_id": merchant_id, "member_id": member_id, "content_id": content_id,
                           "liked": liked, "at_ms": at_ms}
        await self.bump(merchant_id, content_id, "likes", 1 if liked else -1)
        return True

    async def bump(self, merchant_id, content_id, name, by) -> None:
        row = self.stats.setdefault(content_id, {"merchant_id": merchant_id})
        row[name] = row.get(name, 0) + by

    async def counts(self, merchant_id, content_ids) -> dict[str, Counts]:
        return {c: Counts(*(max(0, self.stats[c].get(n, 0)) for n in ("views", "likes", "comments", "shares")))
                for c in content_ids if c in self.stats and self.stats[c]["merchant_id"] == merchant_id}

    async def liked(self, merchant_id, content_id, member_id) -> bool:
        row = self.likes.get(f"{merchant_id}:{content_id}:{member_id}")
        return bool(row and row["liked"])

    async def export_member(self, merchant_id, member_id):
        views = [{"content_id": v["content_id"], "day": v["day"], "at_ms": v["at_ms"]} for v in self.views.values()
                 if (v["merchant_id"], v["member_id"]) == (merchant_id, member_id)]
        likes = [{"content_id": v["content_id"], "at_ms": v["at_ms"]} for v in self.likes.values()
                 if (v["merchant_id"], v["member_id"]) == (merchant_id, member_id) and v["liked"]]
        return views, likes

    async def erase_member(self, merchant_id, member_id) -> list[str]:
        mine = lambda v: (v["merchant_id"], v["member_id"]) == (merchant_id, member_id)  # noqa: E731
        self.views = {k: v for k, v in self.views.items() if not mine(v)}
        taken = [v["content_id"] for v in self.likes.values() if mine(v) and v["liked"]]
        self.likes = {k: v for k, v in self.likes.items() if not mine(v)}
        return taken


@dataclass
class FakeComments:
    items: dict[str, Comment] = field(default_factory=dict)
    reports: dict[str, dict] = field(default_factory=dict)
    # Makes the next save lose to "another writer" (StaleVersion) that many times.
    stale_saves: int = 0

    async def get(self, merchant_id, comment_id):
        c = self.items.get(comment_id)
        return copy.deepcopy(c) if c is not None and c.merchant_id == merchant_id else None

    async def by_key(self, merchant_id, member_id, idempotency_key):
        for c in self.items.values():
            if (c.merchant_id, c.member_id, c.idempotency_key) == (merchant_id, member_id, idempotency_key):
                return copy.deepcopy(c)
        return None

    async def add(self, comment) -> bool:
        if await self.by_key(comment.merchant_id, comment.member_id, comment.idempotency_key) is not None:
            return False
        self.items[comment.id] = copy.deepcopy(comment)
        return True

    async def save(self, comment) -> None:
        stored = self.items.get(comment.id)
        if self.stale_saves:
            self.stale_saves -= 1
            stored.version += 1
            raise StaleVersion("another writer")
        if stored is None or stored.version != comment.version:
            raise StaleVersion("changed")
        comment.version += 1
        # The report count moves on its own, as in the store.
        self.items[comment.id] = replace(copy.deepcopy(comment), report_count=stored.report_count)

    async def visible_page(self, merchant_id, content_id, member_id, after_id, limit):
        rows = [c for c in self.items.values() if c.merchant_id == merchant_id and c.content_id == content_id
                and (c.status == PUBLISHED or (member_id and c.member_id == member_id and c.status in (HELD, HIDDEN)))
                and (not after_id or c.id < after_id)]
        return copy.deepcopy(sorted(rows, key=lambda c: c.id, reverse=True)[:limit])

    async def review_page(self, merchant_id, statuses, after_id, limit):
        rows = [c for c in self.items.values() if c.merchant_id == merchant_id and c.status in statuses
                and (not after_id or c.id > after_id)]
        return copy.deepcopy(sorted(rows, key=lambda c: c.id)[:limit])

    async def add_report(self, merchant_id, comment_id, member_id, reason, at_ms) -> bool:
        key = f"{comment_id}:{member_id}"
        if key in self.reports:
            return False
        self.reports[key] = {"merchant_id": merchant_id, "member_id": member_id, "comment_id": comment_id,
                             "reason": reason, "at_ms": at_ms}
        self.items[comment_id].report_count += 1
        return True

    async def hide_if_reported(self, merchant_id, comment_id, threshold) -> bool:
        c = self.items.get(comment_id)
        if c is None or c.merchant_id != merchant_id or c.status != PUBLISHED or c.report_count < threshold:
            return False
        c.status, c.moderation_reason, c.version = HIDDEN, "reported", c.version + 1
        return True

    async def export_member(self, merchant_id, member_id):
        comments = [{"comment_id": c.id, "content_id": c.content_id, "text": c.text, "status": c.status,
                     "created_ms": c.created_ms} for c in sorted(self.items.values(), key=lambda c: c.id)
                    if (c.merchant_id, c.member_id) == (merchant_id, member_id)]
        reports = [{"comment_id": r["comment_id"], "reason": r["reason"], "at_ms": r["at_ms"]}
                   for r in self.reports.values() if (r["merchant_id"], r["member_id"]) == (merchant_id, member_id)]
        return comments, reports

    async def erase_member(self, merchant_id, member_id):
        changed = []
        for c in self.items.values():
            if (c.merchant_id, c.member_id) == (merchant_id, member_id):
                changed.append((c.content_id, c.status))
                c.member_id, c.text, c.status, c.moderation_reason = "", "", REJECTED, "author erased"
                c.idempotency_key, c.version = "", c.version + 1
        self.reports = {k: r for k, r in self.reports.items()
                        if (r["merchant_id"], r["member_id"]) != (merchant_id, member_id)}
        return changed


@dataclass
class FakeSettings:
    rows: dict[str, tuple[EngagementSettings, int]] = field(default_factory=dict)

    async def get(self, merchant_id):
        return self.rows.get(merchant_id, (EngagementSettings(), 0))

    async def save(self, merchant_id, settings, expected_version, updated_ms) -> bool:
        if self.rows.get(merchant_id, (None, 0))[1] != expected_version:
            return False
        self.rows[merchant_id] = (settings, expected_version + 1)
        return True


@dataclass
class FakeAudit:
    entries: list[AuditEntry] = field(default_factory=list)

    async def add(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


@dataclass
class FakeShareCodes:
    codes: dict[str, ShareCode] = field(default_factory=dict)
    opens: list[dict] = field(default_factory=list)
    open_days: set[str] = field(default_factory=set)
    member_opens: dict[str, int] = field(default_factory=dict)
    # Codes another sharer holds already: the next draws collide with them.
    collisions: int = 0

    async def get(self, merchant_id, code):
        s = self.codes.get(code)
        return s if s is not None and s.merchant_id == merchant_id else None

    async def by_dedup_key(self, dedup_key):
        return next((s for s in self.codes.values() if s.dedup_key == dedup_key), None)

    async def add(self, share) -> str:
        if self.collisions:
            self.collisions -= 1
            return "code_taken"
        if share.code in self.codes:
            return "code_taken"
        if await self.by_dedup_key(share.dedup_key) is not None:
            return "key_taken"
        self.codes[share.code] = share
        return "added"

    async def record_open(self, merchant_id, code, opener, member_id, day, at_ms, opened=None) -> bool:
        self.opens.append({"merchant_id": merchant_id, "code": code, "member_id": member_id, "at_ms": at_ms,
                           "events": [opened] if opened is not None else []})
        if member_id:
            self.member_opens[f"{merchant_id}:{code}:{member_id}"] = at_ms
        key = f"{merchant_id}:{code}:{opener}:{day}"
        if key in self.open_days:
            return False
        self.open_days.add(key)
        self.codes[code] = replace(self.codes[code], click_count=self.codes[code].click_count + 1)
        return True

    async def last_opened_ms(self, merchant_id, code, member_id) -> int:
        return self.member_opens.get(f"{merchant_id}:{code}:{member_id}", 0)

    async def export_member(self, merchant_id, member_id):
        codes = [{"code": s.code, "target_kind": s.target.kind, "target_id": s.target.target_id,
                  "created_ms": s.created_ms} for s in self.codes.values()
                 if (s.merchant_id, s.sharer_kind, s.sharer_id) == (merchant_id, "member", member_id)]
        opens = [{"code": o["code"], "at_ms": o["at_ms"]} for o in self.opens
                 if (o["merchant_id"], o["member_id"]) == (merchant_id, member_id)]
        return codes, opens

    async def erase_member(self, merchant_id, member_id) -> None:
        for code, s in list(self.codes.items()):
            if (s.merchant_id, s.sharer_kind, s.sharer_id) == (merchant_id, "member", member_id):
                self.codes[code] = replace(s, sharer_id="")
        self.opens = [o for o in self.opens if (o["merchant_id"], o["member_id"]) != (merchant_id, member_id)]
        self.member_opens = {k: v for k, v in self.member_opens.items()
                             if not k.startswith(f"{merchant_id}:") or not k.endswith(f":{member_id}")}
