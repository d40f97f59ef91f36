"""Callers that give up: their deadline, and work that must not be cut in half.

In grpc.aio a caller that gives up (its deadline passes, it cancels, it disconnects)
cancels the handler's task: `CancelledError` is raised at the handler's current await,
while storage work already handed to the thread pool runs on. Work that took something
(units of stock) must therefore either finish and hand it over, or give it back at once;
`shielded` lets such a step run to its end and only then lets the cancellation through.

`deadline_of` puts the incoming call's deadline into the request context, `require_time`
refuses to start work that could not finish before it, and `timeout` passes what is left
on to the next call.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Awaitable, Iterator, TypeVar

from siyu_kit import context
from siyu_kit.errors import Unavailable

T = TypeVar("T")

TOO_LATE = "DEADLINE_TOO_SHORT"


async def shielded(work: Awaitable[T]) -> T:
    """Awaits `work` to its end even when the caller is cancelled meanwhile; a cancellation
    that arrived is raised afterwards (the result then goes nowhere: the caller is gone)."""
    task = asyncio.ensure_future(work)
    gave_up: asyncio.CancelledError | None = None
    while not task.done():
        try:
            # Unlike awaiting the task, waiting for it does not cancel it.
            await asyncio.wait([task])
        except asyncio.CancelledError as error:
            gave_up = error
    if gave_up is not None:
        if not task.cancelled() and task.exception() is not None:
            raise gave_up from task.exception()
        raise gave_up
    return task.result()


@contextlib.contextmanager
def deadline_of(servicer_context) -> Iterator[None]:
    """Within the block, the request context knows when the incoming gRPC call's deadline
    passes (a call without a deadline leaves it unset)."""
    left = servicer_context.time_remaining()
    if left is None:
        yield
        return
    token = context.use(context.current().with_deadline(time.monotonic() + left))
    try:
        yield
    finally:
        context.reset(token)


def require_time(minimum_s: float, what: str) -> None:
    """UNAVAILABLE when less than `minimum_s` is left of the caller's deadline: work begun
    now would be given up half-way, after taking what it then has to give back."""
    left = context.current().time_left()
    if left is not None and left < minimum_s:
        raise Unavailable(f"too little time was left to {what}; try again", reason=TOO_LATE)


def timeout(default_s: float) -> float:
    """The timeout of an outgoing call: `default_s`, or less when the caller's deadline is nearer."""
    left = context.current().time_left()
    return default_s if left is None else max(0.001, min(default_s, left))
