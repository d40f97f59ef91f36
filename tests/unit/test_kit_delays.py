"""Delay points: armed only by name, for the given number of seconds."""
from __future__ import annotations

from types import SimpleNamespace

from siyu_kit import delays


def test_the_spec_names_points_and_seconds():
    assert delays._parse("") == {}
    assert delays._parse("a.b=1.5, c.d=0.2,,") == {"a.b": 1.5, "c.d": 0.2}


async def test_an_unarmed_point_does_not_wait(monkeypatch):
    waits: list[float] = []

    async def asleep(seconds):
        waits.append(seconds)
    monkeypatch.setattr(delays, "time", SimpleNamespace(sleep=waits.append))
    monkeypatch.setattr(delays, "asyncio", SimpleNamespace(sleep=asleep))
    delays.stall("not.armed")
    await delays.pause("not.armed")
    assert waits == []
    # An armed point does wait, through the same calls.
    monkeypatch.setattr(delays, "_armed", {"armed.point": 0.2})
    delays.stall("armed.point")
    await delays.pause("armed.point")
    assert waits == [0.2, 0.2]
