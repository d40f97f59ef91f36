"""Delay points: armed only by name, for the given number of seconds."""
from __future__ import annotations

import time

from siyu_kit import delays


def test_the_spec_names_points_and_seconds():
    assert delays._parse("") == {}
    assert delays._parse("a.b=1.5, c.d=0.2,,") == {"a.b": 1.5, "c.d": 0.2}


async def test_an_unarmed_point_does_not_wait():
    started = time.monotonic()
    delays.stall("not.armed")
    await delays.pause("not.armed")
    assert time.monotonic() - started < 0.05
