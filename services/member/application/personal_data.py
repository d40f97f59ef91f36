"""Members' data exports (PIPL Art. 45): a member asks, the export job gathers their data
from every service (each a part, so progress shows and a restart resumes at the next
part), the member downloads one JSON document, and the expiry job deletes it after KEEP.

The job is safe on every replica: each export is leased to one of them at a time and every
part is stored only while the lease is held."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Callable

from services.member.application.personal_data_ports import DataExportStore, ErasureStore, MemberDataSource
from services.member.domain.personal_data import DataExport, Erasure, document
from siyu_kit import context
from siyu_kit.errors import AlreadyExists, FailedPrecondition, NotFound
from siyu_kit.ids import new_id


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class DataExports:
    def __init__(self, store: DataExportStore, sources: dict[str, MemberDataSource],
                 clock: Callable[[], datetime] = _utcnow, holder: str = ""):
        self.store = store
        self.sources = sources  # part name → where it is gathered
        self.clock = clock
        self.holder = holder or new_id("dxh")

    async def request(self, idempotency_key: str) -> tuple[DataExport, bool]:
        ctx = context.current()
        member_id = ctx.require_member()
        fresh = DataExport(id=new_id("dex"), merchant_id=ctx.merchant_id, member_id=member_id,
                           idempotency_key=idempotency_key, created_at=self.clock())
        stored = await self.store.add(fresh)
        return stored, stored.id == fresh.id

    async def get(self, export_id: str) -> DataExport:
        ctx = context.current()
        export = await self.store.get(ctx.merchant_id, ctx.require_member(), export_id)
        if export is None:
            raise NotFound(f"data export {export_id} not found", reason="DATA_EXPORT_NOT_FOUND")
        return export

    async def download(self, export_id: str) -> tuple[DataExport, str]:
        export = await self.get(export_id)
        export.require_downloadable(self.clock())
        return export, json.dumps(document(export), ensure_ascii=False, sort_keys=True)

    # ---- jobs ----------------------------------------------------------------------------
    async def gather_due(self, limit: int = 20) -> int:
        """The export job: gathers leased exports part by part; how many became ready."""
        ready = 0
        for _ in range(limit):
            export = await self.store.lease_next(self.holder, self.clock())
            if export is None:
                break
            if await self._gather(export):
                ready += 1
        return ready

    async def _gather(self, export: DataExport) -> bool:
        # Other services are asked in the member's merchant, as this service.
        token = context.use(context.RequestContext(request_id=new_id("req"), merchant_id=export.merchant_id))
        try:
            while (part := export.next_part()) is not None:
                data = await self.sources[part].gather(export.merchant_id, export.member_id)
                export.parts[part] = json.dumps(data, ensure_ascii=False, sort_keys=True)
                export.gathered(part, self.clock())
                if not await self.store.save_part(export, self.holder, part):
                    return False  # another replica took it over
            return True
        finally:
            context.reset(token)

    async def expire_due(self, limit: int = 200) -> int:
        return await self.store.expire_due(self.clock(), limit)


class Erasures:
    """A member's erasure (PIPL Art. 47): EraseMe marks the member ERASING (their sessions
    end at once) and emits member.erased in the same write; every service's consumer erases
    what it keeps and acknowledges; the member is ERASED once all have. The member service
    erases its own part in the request and again in its consumer, so a crash between the
    two leaves nothing undone."""

    def __init__(self, store: ErasureStore, clock: Callable[[], datetime] = _utcnow):
        self.store = store
        self.clock = clock

    async def erase_me(self, idempotency_key: str) -> Erasure:
        """A repeat with the request's key answers the erasure as it is now; the key
        used by another member of the merchant is refused (IDEMPOTENCY_KEY_REUSED)."""
        ctx = context.current()
        member_id = ctx.require_member()
        owner = await self.store.claim_key(ctx.merchant_id, idempotency_key, member_id)
        if owner != member_id:
            raise AlreadyExists("the idempotency key was used for another erasure; use a new key",
                                reason="IDEMPOTENCY_KEY_REUSED")
        await self.store.start(ctx.merchant_id, member_id, self.clock())
        erasure = await self.store.get(ctx.merchant_id, member_id)
        if erasure is None:
            raise NotFound(f"member {member_id} not found")
        if "member" not in erasure.acknowledged:
            erasure = await self.erase_own(ctx.merchant_id, member_id) or erasure
        return erasure

    async def erase_own(self, merchant_id: str, member_id: str) -> Erasure | None:
        """The member service's own part (the request's, and its consumer's on member.erased)."""
        if await self.store.get(merchant_id, member_id) is None:
            return None  # not being erased: nothing to do
        await self.store.erase_own_data(merchant_id, member_id)
        return await self.store.acknowledge(merchant_id, member_id, "member")

    async def acknowledge(self, member_id: str, service: str) -> Erasure:
        merchant_id = context.current().require_merchant()
        erasure = await self.store.acknowledge(merchant_id, member_id, service)
        if erasure is None:
            raise FailedPrecondition(f"member {member_id} is not being erased", reason="MEMBER_NOT_ERASING")
        return erasure
