"""The MongoDB connection (one database per service), the bounded thread pool that
keeps mongoengine's synchronous calls off the event loop, and the count of round trips."""
from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import mongoengine
from pymongo import monitoring
from pymongo.database import Database

from siyu_kit import context
from siyu_kit.metrics import DB_COMMANDS

T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None
# While the database is away a call fails within this long (and the caller gets
# UNAVAILABLE) instead of holding a pool thread until the gateway's deadline.
SERVER_WAIT_MS = 2000
# How long a connection attempt, and the driver's heartbeat to the server, may take. A
# heartbeat that times out marks the server down and cancels every command in flight, so
# it must outlast a busy server's slowest answer (a server that is gone refuses at once;
# SERVER_WAIT_MS still bounds how long a call waits for one).
CONNECT_WAIT_MS = 10_000


class RoundTripCounter(monitoring.CommandListener):
    """Counts every command sent, by the RPC it ran for. pymongo reports a command on the
    thread that sends it, and run_sync carries the request context into that thread."""

    def __init__(self, service: str):
        self.service = service

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        DB_COMMANDS.labels(self.service, context.current().rpc or "background").inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def connect(uri: str, db_name: str, threads: int = 16, service: str = "") -> Database:
    """Connect mongoengine's default alias and size the thread pool. Safe to call again."""
    global _pool
    mongoengine.disconnect()
    mongoengine.connect(db=db_name, host=uri, uuidRepresentation="standard", tz_aware=True,
                        serverSelectionTimeoutMS=SERVER_WAIT_MS,
                        connectTimeoutMS=CONNECT_WAIT_MS, maxPoolSize=threads + 4,
                        event_listeners=[RoundTripCounter(service or db_name)])
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="db")
    return mongoengine.get_db()


def database() -> Database:
    return mongoengine.get_db()


async def run_sync(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking storage call in the pool, keeping the request context."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="db")
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_pool, call)


def ping() -> bool:
    try:
        mongoengine.get_db().client.admin.command("ping")
        return True
    except Exception:  # noqa: BLE001 - any failure means not reachable
        return False
