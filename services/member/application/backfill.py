"""Backfills: bring documents stored before a field was kept up to date, once, in the
background, on every replica without stepping on each other.

Members registered before the member document kept its growth (the sum of the ledger's
growth, for the staff's search by tier) have none: the staff's list shows them at the
first tier with no growth and a search by tier misses them, until their next points
entry. Members who bound a phone before its last four digits were written beside them
are not found by phone suffix. Each backfill walks its documents in id order and repairs
each one with a write that is safe to repeat (growth only ever raised to the ledger's
sum; the suffix set only where it differs).

Resumable: the walk's checkpoint (the last id done) is stored after every batch, so a
restart goes on from there. Replica-safe: a replica works on a backfill only while it
holds its lease (a conditional write); another replica takes over when the lease runs
out. A batch repeated after a lost lease is harmless, the writes being idempotent.
Documents written after a backfill started are kept up to date by the code that writes
them, so a backfill that reached the end is done for good.
"""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Callable

from services.member.application.ports import BackfillProgress, BackfillSource
from siyu_kit import logging as slog
from siyu_kit.protos import utcnow

log = slog.get("siyu.member.backfill")

BATCH = 200
LEASE = timedelta(seconds=60)
# One run works this long at most, then lets the next run (and the event loop) go on.
RUN_FOR_S = 10.0


class Backfills:
    def __init__(self, progress: BackfillProgress, sources: list[BackfillSource], holder: str,
                 batch: int = BATCH, run_for_s: float = RUN_FOR_S, clock: Callable = utcnow):
        self.progress = progress
        self.sources = sources
        self.holder = holder
        self.batch = batch
        self.run_for_s = run_for_s
        self.clock = clock

    async def run(self) -> int:
        """One pass of every backfill not done yet: the documents looked at."""
        seen = 0
        for source in self.sources:
            seen += await self._run_one(source)
        return seen

    async def _run_one(self, source: BackfillSource) -> int:
        after = await self.progress.claim(source.name, self.holder, self.clock(), self.clock() + LEASE)
        if after is None:  # done, or another replica holds it
            return 0
        started, seen = time.monotonic(), 0
        while True:
            last, count = await source.step(after, self.batch)
            seen += count
            done = count < self.batch
            if not await self.progress.advance(source.name, self.holder, last or after, done,
                                               self.clock() + LEASE):
                return seen  # the lease was lost: the other holder goes on
            after = last or after
            if done:
                log.info("backfill.done", backfill=source.name)
                return seen
            if time.monotonic() - started >= self.run_for_s:
                return seen
