"""Members' data exports over in-memory ports: one export per key, the job gathering
every part with progress, resuming at the next part after a failure, never two replicas
on one export, the document only once READY and only for its member, and expiry deleting
the document."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from services.member.application.personal_data import DataExports
from services.member.domain.personal_data import KEEP, LEASE, PARTS, DataExport
from siyu_kit.errors import FailedPrecondition, NotFound
from siyu_kit.ids import new_id
from tests.fakes.callers import caller
from tests.fakes.personal_data import FakeDataExports, FakeSource

NOW = datetime(2026, 6, 1, 4, tzinfo=timezone.utc)
SHOP, OTHER = new_id("mch"), new_id("mch")


class World:
    def __init__(self, order_fail: int = 0):
        self.now = NOW
        self.store = FakeDataExports()
        self.sources = {"member": FakeSource({"profile": {"nickname": "小美"}}),
                        "order": FakeSource({"orders": [{"_id": "ord_1"}]}, fail=order_fail),
                        "catalog": FakeSource({"flash_sale_quotas": [{"used": 1}]}),
                        "content": FakeSource({"follows": [{"persona_id": "per_1"}]})}
        self.member = new_id("mem")

    def replica(self, holder: str = "") -> DataExports:
        return DataExports(self.store, self.sources, clock=lambda: self.now, holder=holder or new_id("dxh"))

    def as_member(self, member_id: str = "", merchant_id: str = SHOP):
        return caller(merchant_id, channel="H5", member_id=member_id or self.member)


async def test_one_export_per_key_and_a_new_one_for_a_new_key():
    w = World()
    use = w.replica()
    with w.as_member():
        first, created = await use.request("k1")
        again, created_again = await use.request("k1")
        other, _ = await use.request("k2")
    assert created and not created_again and again.id == first.id and other.id != first.id
    assert (first.state, first.steps_done, first.steps_total) == ("GATHERING", 0, len(PARTS))


async def test_the_job_gathers_every_part_and_the_member_downloads_one_document():
    w = World()
    use = w.replica()
    with w.as_member():
        export, _ = await use.request("k1")
    assert await use.gather_due() == 1
    with w.as_member():
        done = await use.get(export.id)
        assert (done.state, done.steps_done, done.expires_at) == ("READY", 4, NOW + KEEP)
        _, text = await use.download(export.id)
    document = json.loads(text)
    assert document["member"]["profile"]["nickname"] == "小美"
    assert document["order"]["orders"] == [{"_id": "ord_1"}]
    assert document["catalog"]["flash_sale_quotas"] == [{"used": 1}]
    assert document["content"]["follows"] == [{"persona_id": "per_1"}]
    assert document["member_id"] == w.member
    # Each source was asked once, in the member's merchant.
    assert all(source.calls == [(SHOP, w.member)] for source in w.sources.values())


async def test_a_failed_part_keeps_the_parts_before_it_and_the_next_run_after_the_lease_resumes():
    w = World(order_fail=1)
    use = w.replica()
    with w.as_member():
        export, _ = await use.request("k1")
    with pytest.raises(ConnectionError):
        await use.gather_due()
    with w.as_member():
        half = await use.get(export.id)
        assert (half.state, half.steps_done) == ("GATHERING", 1)
        with pytest.raises(FailedPrecondition) as refused:
            await use.download(export.id)
    assert refused.value.reason == "DATA_EXPORT_NOT_READY"
    # Leased to the failed run until the lease runs out; then another replica finishes it.
    assert await w.replica().gather_due() == 0
    w.now += LEASE + timedelta(seconds=1)
    assert await w.replica().gather_due() == 1
    assert len(w.sources["member"].calls) == 1 and len(w.sources["order"].calls) == 2


async def test_a_replica_that_lost_its_lease_stores_nothing():
    w = World()
    with w.as_member():
        export, _ = await w.replica().request("k1")
    slow = w.replica("slow")
    leased = await w.store.lease_next("slow", w.now)
    w.now += LEASE + timedelta(seconds=1)
    assert await w.replica("fast").gather_due() == 1
    leased.parts["member"] = "{}"
    leased.gathered("member", w.now)
    assert await slow.store.save_part(leased, "slow", "member") is False
    assert w.store.items[export.id].parts["member"] != "{}"


async def test_only_the_member_sees_their_export():
    w = World()
    use = w.replica()
    with w.as_member():
        export, _ = await use.request("k1")
    await use.gather_due()
    for who in (w.as_member(new_id("mem")), w.as_member(merchant_id=OTHER)):
        with who, pytest.raises(NotFound) as refused:
            await use.download(export.id)
        assert refused.value.reason == "DATA_EXPORT_NOT_FOUND"


async def test_an_export_expires_and_its_document_is_deleted():
    w = World()
    use = w.replica()
    with w.as_member():
        export, _ = await use.request("k1")
    await use.gather_due()
    w.now += KEEP
    # Past its expiry it is shown expired even before the job ran.
    with w.as_member(), pytest.raises(FailedPrecondition) as refused:
        await use.download(export.id)
    assert refused.value.reason == "DATA_EXPORT_EXPIRED"
    assert await use.expire_due() == 1 and await use.expire_due() == 0
    assert w.store.items[export.id].parts == {} and w.store.items[export.id].state == "EXPIRED"


def test_progress_counts_parts_once():
    e = DataExport(id="dex_1", merchant_id=SHOP, member_id="mem_1", idempotency_key="k", created_at=NOW)
    e.gathered("member", NOW)
    e.gathered("member", NOW)
    assert (e.steps_done, e.state, e.next_part()) == (1, "GATHERING", "order")
    e.gathered("order", NOW)
    assert (e.steps_done, e.state, e.next_part()) == (2, "GATHERING", "catalog")
    e.gathered("catalog", NOW)
    assert (e.steps_done, e.state, e.next_part()) == (3, "GATHERING", "content")
    e.gathered("content", NOW)
    assert (e.steps_done, e.state, e.next_part(), e.ready_at) == (4, "READY", None, NOW)
