"""The hot path's in-process caches: kept for their time-to-live, dropped by key, and a
drop that comes while a value is being read keeps that (possibly old) value out."""
from __future__ import annotations

import asyncio

from google.protobuf import any_pb2
from siyu.common.v1 import common_pb2
from siyu.member.v1 import events_pb2

from siyu_kit.events import invalidation
from siyu_kit.events.invalidation import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_value_is_kept_for_its_time_to_live_then_read_again():
    clock, reads = Clock(), []
    cache: TtlCache[str, int] = TtlCache(5.0, clock=clock)

    async def load() -> int:
        reads.append(1)
        return len(reads)

    assert await cache.get_or_load("k", load) == 1
    clock.now += 4.9
    assert await cache.get_or_load("k", load) == 1
    clock.now += 0.2
    assert await cache.get_or_load("k", load) == 2


async def test_a_dropped_key_is_read_again_and_others_stay():
    cache: TtlCache[str, int] = TtlCache(60.0)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.drop("a")
    assert cache.get("a") is None and cache.get("b") == 2
    cache.clear()
    assert cache.get("b") is None


async def test_a_drop_during_a_read_keeps_the_value_read_out_of_the_cache():
    cache: TtlCache[str, int] = TtlCache(60.0)
    started, go_on = asyncio.Event(), asyncio.Event()

    async def slow_read() -> int:
        started.set()
        await go_on.wait()
        return 1  # read before the change the drop announces

    reading = asyncio.create_task(cache.get_or_load("k", slow_read))
    await started.wait()
    cache.drop("k")
    go_on.set()
    assert await reading == 1
    assert cache.get("k") is None


def test_the_oldest_entries_go_first_beyond_the_bound():
    cache: TtlCache[int, int] = TtlCache(60.0, max_entries=3)
    for i in range(5):
        cache.put(i, i)
    assert [cache.get(i) for i in range(5)] == [None, None, 2, 3, 4]


async def test_listeners_get_the_envelope_of_every_message_on_their_subject():
    heard: list[str] = []
    invalidation.on_events("siyu.test.invalidation.>", lambda e: heard.append(e.merchant_id))
    callbacks = []

    class FakeNats:
        async def subscribe(self, subject, cb):
            if subject == "siyu.test.invalidation.>":
                callbacks.append(cb)

    class Msg:
        def __init__(self, data: bytes):
            self.data, self.subject = data, "siyu.test.invalidation.x"

    await invalidation.listen(FakeNats())
    payload = any_pb2.Any()
    payload.Pack(events_pb2.PointsMoved(member_id="mem_1"))
    envelope = common_pb2.EventEnvelope(event_id="evt_1", merchant_id="mch_1", payload=payload)
    await callbacks[0](Msg(envelope.SerializeToString()))
    await callbacks[0](Msg(b"\xff\xff not an envelope"))  # logged, never raised
    assert heard == ["mch_1"]


async def test_every_cache_is_emptied_when_nats_comes_back():
    prices, settings = TtlCache(60.0), TtlCache(60.0)
    prices.put("sku_1", 100)
    settings.put("mch_1", {"expiry_s": 900})

    started = asyncio.Event()
    finish = asyncio.Event()

    async def slow_load():
        started.set()
        await finish.wait()
        return 90

    loading = asyncio.create_task(prices.get_or_load("sku_2", slow_load))
    await started.wait()
    # The events published while the process was cut off never reach it.
    await invalidation.on_reconnected()
    finish.set()
    assert await loading == 90

    assert prices.get("sku_1") is None and settings.get("mch_1") is None
    assert prices.get("sku_2") is None  # read before the reconnect: not kept

