"""Delay points: a test hook that holds the work at a named point in the code.

    delays.stall("catalog.reserve.before")            # in code running in the storage pool
    await delays.pause("order.place.after_reserve")   # on the event loop

do nothing unless the process was started with SIYU_DELAYPOINTS naming that point with a
number of seconds ("catalog.reserve.before=1.5,order.place.after_reserve=1"); then
they wait that long. Tests use them to open a window of known length, e.g. to give up on
a call after stock was taken and before the order was written, the way a busy machine
does. Never set it in production.
"""
from __future__ import annotations

import asyncio
import os
import time

ENV = "SIYU_DELAYPOINTS"


def _parse(spec: str) -> dict[str, float]:
    armed = {}
    for item in spec.split(","):
        name, _, seconds = item.partition("=")
        if name.strip():
            armed[name.strip()] = float(seconds or 0)
    return armed


_armed = _parse(os.environ.get(ENV, ""))


def stall(name: str) -> None:
    """Blocks the calling thread; only for code that runs in the storage pool."""
    if name in _armed:
        time.sleep(_armed[name])


async def pause(name: str) -> None:
    if name in _armed:
        await asyncio.sleep(_armed[name])
