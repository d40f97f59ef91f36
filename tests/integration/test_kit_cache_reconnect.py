"""A process cut off from NATS misses the events that would have dropped its cached values:
when its connection comes back, every cache of the process is emptied (a real nats-server,
stopped and started again on its port)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from siyu_kit import service
from siyu_kit.devstack import Stack
from siyu_kit.events.invalidation import TtlCache
from tests.support import eventually


async def test_caches_are_emptied_when_the_nats_connection_comes_back(tmp_path: Path):
    servers = Stack.on_free_ports(tmp_path)
    servers.start_nats()
    nc = None
    try:
        nc = await service._connect_nats(servers.nats_url, asyncio.Event())
        prices = TtlCache(3600.0)
        prices.put("sku_1", 5900)

        servers.stop("nats")
        await eventually(lambda: not nc.is_connected, timeout=10, message="the client sees NATS gone")
        assert prices.get("sku_1") == 5900  # kept while away: its time-to-live bounds it
        servers.start_nats()

        await eventually(lambda: nc.is_connected and prices.get("sku_1") is None, timeout=20,
                         message="the cache is emptied once the connection is back")
    finally:
        if nc is not None:
            await nc.close()
        servers.stop_all()
