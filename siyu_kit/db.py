"""The MongoDB connection (one database per service) and the bounded thread pool that
keeps mongoengine's synchronous calls off the event loop."""
from __future__ import annotations

import asyncio
import contextvars
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import mongoengine
from pymongo.database import Database

T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None


def connect(uri: str, db_name: str, threads: int = 16) -> Database:
    """Connect mongoengine's default alias and size the thread pool. Safe to call again."""
    global _pool
    mongoengine.disconnect()
    mongoengine.connect(db=db_name, host=uri, uuidRepresentation="standard", tz_aware=True,
                        serverSelectionTimeoutMS=3000, maxPoolSize=threads + 4)
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
