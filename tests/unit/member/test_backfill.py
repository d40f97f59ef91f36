"""Backfills over in-memory ports: a walk in batches with a stored checkpoint, resumed after
a crash, one replica at a time (a lease), taken over when the holder's lease runs out,
done for good at the end."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.member.application.backfill import LEASE, Backfills
from tests.fakes.member import FakeBackfillProgress, FakeBackfillSource

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def ids(n: int) -> list[str]:
    return [f"mem_{i:04d}" for i in range(n)]


async def test_a_backfill_walks_every_document_once_in_batches_then_is_done():
    progress, source = FakeBackfillProgress(), FakeBackfillSource("growth", ids(25))
    job = Backfills(progress, [source], "replica-a", batch=10, clock=Clock())
    assert await job.run() == 25
    assert source.repaired == {i: 1 for i in ids(25)}
    assert progress.items["growth"]["done"] and progress.items["growth"]["after_id"] == "mem_0024"
    assert await job.run() == 0  # done for good: nothing looked at again


async def test_a_run_stops_after_its_time_and_the_next_goes_on_from_the_checkpoint():
    progress, source = FakeBackfillProgress(), FakeBackfillSource("growth", ids(25))
    job = Backfills(progress, [source], "replica-a", batch=10, run_for_s=0, clock=Clock())
    assert await job.run() == 10 and progress.items["growth"]["after_id"] == "mem_0009"
    assert await job.run() == 10 and await job.run() == 5
    assert source.repaired == {i: 1 for i in ids(25)} and progress.items["growth"]["done"]


async def test_a_crash_mid_batch_resumes_from_the_last_stored_checkpoint():
    progress, source = FakeBackfillProgress(), FakeBackfillSource("growth", ids(25))
    clock = Clock()
    job = Backfills(progress, [source], "replica-a", batch=10, clock=clock)
    source.fail_after = 4
    with pytest.raises(RuntimeError):
        await job.run()
    assert progress.items["growth"]["after_id"] == ""
    # a restarted process is another holder: it waits for the dead one's lease to run out
    restarted = Backfills(progress, [source], "replica-a2", batch=10, clock=clock)
    assert await restarted.run() == 0
    clock.now += LEASE + timedelta(seconds=1)
    assert await restarted.run() == 25
    # the first four were repaired twice (the writes are safe to repeat), every one at least once
    assert set(source.repaired) == set(ids(25)) and max(source.repaired.values()) == 2
    assert progress.items["growth"]["done"]


async def test_one_replica_works_at_a_time_and_another_takes_over_a_lost_lease():
    progress, source = FakeBackfillProgress(), FakeBackfillSource("growth", ids(30))
    clock = Clock()
    a = Backfills(progress, [source], "replica-a", batch=10, run_for_s=0, clock=clock)
    b = Backfills(progress, [source], "replica-b", batch=10, run_for_s=0, clock=clock)
    assert await a.run() == 10
    assert await b.run() == 0  # a holds the lease
    clock.now += LEASE + timedelta(seconds=1)  # a stopped: its lease runs out
    assert await b.run() == 10 and progress.items["growth"]["holder"] == "replica-b"
    assert await a.run() == 0  # b holds it now
    clock.now += LEASE + timedelta(seconds=1)
    assert await a.run() == 10
    assert source.repaired == {i: 1 for i in ids(30)}


async def test_a_holder_that_lost_its_lease_mid_run_stops():
    progress, source = FakeBackfillProgress(), FakeBackfillSource("growth", ids(30))
    job = Backfills(progress, [source], "replica-a", batch=10, clock=Clock())
    real = source.step

    async def stolen(after_id, limit):
        progress.items["growth"]["holder"] = "replica-b"  # b took it over meanwhile
        return await real(after_id, limit)
    source.step = stolen
    assert await job.run() == 10
    assert progress.items["growth"]["after_id"] == "" and not progress.items["growth"]["done"]


async def test_each_backfill_has_its_own_progress():
    progress = FakeBackfillProgress()
    growth, phones = FakeBackfillSource("growth", ids(3)), FakeBackfillSource("phones", ["h1", "h2"])
    assert await Backfills(progress, [growth, phones], "replica-a", clock=Clock()).run() == 5
    assert progress.items["growth"]["done"] and progress.items["phones"]["done"]
