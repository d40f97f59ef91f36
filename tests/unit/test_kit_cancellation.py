"""Work a cancelled caller must not cut in half, and the caller's deadline."""
from __future__ import annotations

import asyncio
import time

import pytest

from siyu_kit import context
from siyu_kit.cancellation import TOO_LATE, deadline_of, require_time, shielded, timeout
from siyu_kit.errors import Unavailable


class FakeServicerContext:
    def __init__(self, left: float | None):
        self.left = left

    def time_remaining(self) -> float | None:
        return self.left


async def test_shielded_work_finishes_and_the_cancellation_comes_after_it():
    finished = asyncio.Event()
    started = asyncio.Event()

    async def work():
        started.set()
        await asyncio.sleep(0.05)
        finished.set()
        return "done"

    caller = asyncio.create_task(shielded(work()))
    await started.wait()
    caller.cancel()
    await asyncio.sleep(0)
    caller.cancel()  # a second cancel does not cut it short either
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert finished.is_set()


async def test_shielded_returns_the_result_or_raises_the_error_when_nobody_gives_up():
    async def fails():
        raise ValueError("no")

    assert await shielded(asyncio.sleep(0, result=7)) == 7
    with pytest.raises(ValueError):
        await shielded(fails())


async def test_a_cancelled_caller_whose_work_failed_still_gets_the_cancellation():
    started = asyncio.Event()

    async def fails():
        started.set()
        await asyncio.sleep(0.01)
        raise ValueError("no")

    caller = asyncio.create_task(shielded(fails()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller


def test_the_deadline_of_a_call_bounds_what_is_started_and_passed_on():
    with deadline_of(FakeServicerContext(None)):
        assert context.current().time_left() is None
        require_time(10, "anything")
        assert timeout(10) == 10
    with deadline_of(FakeServicerContext(2.0)):
        left = context.current().time_left()
        assert 1.9 < left <= 2.0
        assert timeout(10) <= 2.0 and timeout(1) == 1
        require_time(0.3, "place the order")
        with pytest.raises(Unavailable) as info:
            require_time(5, "place the order")
        assert info.value.reason == TOO_LATE
    assert context.current().deadline == 0.0


def test_a_passed_deadline_refuses_everything_and_leaves_a_minimal_timeout():
    with deadline_of(FakeServicerContext(0.0)):
        time.sleep(0.001)
        assert context.current().time_left() < 0
        assert timeout(10) == 0.001
        with pytest.raises(Unavailable):
            require_time(0.001, "reserve")
