"""A member's data export (PIPL Art. 45): asked for once per key, gathered part by part
(one part per service that keeps member data), downloadable while READY, then EXPIRED and
its document deleted."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from siyu_kit.errors import FailedPrecondition

GATHERING, READY, EXPIRED = "GATHERING", "READY", "EXPIRED"
# The parts of the document, in order: the member service's own data, then each service
# that keeps data about the member (the content service: the personas they follow; its
# funnels count anonymously).
PARTS = ("member", "order", "catalog", "content")
# How long a ready export can be downloaded.
KEEP = timedelta(days=7)
# How long one replica holds an export it gathers before another may take it over.
LEASE = timedelta(minutes=2)


@dataclass
class DataExport:
    id: str
    merchant_id: str
    member_id: str
    idempotency_key: str
    created_at: datetime
    state: str = GATHERING
    done: tuple[str, ...] = ()
    ready_at: datetime | None = None
    expires_at: datetime | None = None
    parts: dict[str, str] = field(default_factory=dict)  # part → its JSON text (opened)

    @property
    def steps_total(self) -> int:
        return len(PARTS)

    @property
    def steps_done(self) -> int:
        return len(self.done)

    def next_part(self) -> str | None:
        return next((p for p in PARTS if p not in self.done), None)

    def gathered(self, part: str, now: datetime) -> None:
        """One part is in; the last one makes the export READY until now + KEEP."""
        if part not in self.done:
            self.done = self.done + (part,)
        if self.next_part() is None:
            self.state, self.ready_at, self.expires_at = READY, now, now + KEEP

    def is_expired(self, now: datetime) -> bool:
        return self.state == EXPIRED or (self.expires_at is not None and now >= self.expires_at)

    def require_downloadable(self, now: datetime) -> None:
        if self.is_expired(now):
            raise FailedPrecondition("the export expired; ask for a new one", reason="DATA_EXPORT_EXPIRED")
        if self.state != READY:
            raise FailedPrecondition("the export is still being gathered", reason="DATA_EXPORT_NOT_READY")


def document(export: DataExport) -> dict:
    """The downloadable document: what it is, then one key per part."""
    doc: dict = {"member_id": export.member_id, "merchant_id": export.merchant_id,
                 "export_id": export.id, "created_at": export.created_at.isoformat()}
    for part in PARTS:
        doc[part] = json.loads(export.parts.get(part) or "{}")
    return doc


# ---- erasure (PIPL Art. 47) -----------------------------------------------------------------

ERASING, ERASED = "ERASING", "ERASED"
# Every service that keeps data about a member and acknowledges its erasure.
SERVICES = ("member", "order", "content", "catalog")


@dataclass(frozen=True)
class Erasure:
    """Where a member's erasure stands: the services that acknowledged it."""
    member_id: str
    state: str  # ERASING or ERASED
    acknowledged: frozenset[str] = frozenset()

    @property
    def complete(self) -> bool:
        return set(SERVICES) <= self.acknowledged
