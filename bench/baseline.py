"""The floor under every stock-moving use case: the embedded server's own rate for the
conditional stock update (`available >= 1` then `$inc`), on a scratch collection, with
as many concurrent callers as the scenario it is compared with."""
from __future__ import annotations

import asyncio
import threading
import time

from pymongo import MongoClient

from bench.harness import Load

SCRATCH_DB = "siyu_bench_scratch"


def conditional_update_rate(mongodb_uri: str, concurrency: int, duration_s: float, documents: int) -> Load:
    """Threads, each with its own pooled connection, take one unit at a time from one of
    `documents` stock documents until `duration_s` is over."""
    client = MongoClient(mongodb_uri, maxPoolSize=concurrency + 2)
    stock = client[SCRATCH_DB]["stock"]
    stock.drop()
    stock.insert_many([{"_id": f"sku_{n}", "available": 10**9, "reserved": 0} for n in range(documents)])
    load = Load()
    lock = threading.Lock()
    deadline = time.perf_counter() + duration_s

    def caller(first: int) -> None:
        mine, missed, i = [], 0, first
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            taken = stock.update_one({"_id": f"sku_{i % documents}", "available": {"$gte": 1}},
                                     {"$inc": {"available": -1, "reserved": 1}}).modified_count
            if taken == 1:
                mine.append((time.perf_counter() - started) * 1000)
            else:
                missed += 1
            i += concurrency
        with lock:
            load.latencies_ms.extend(mine)
            if missed:
                load.failures["NOT_MODIFIED"] += missed

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load.elapsed_s = time.perf_counter() - started
    client.drop_database(SCRATCH_DB)
    client.close()
    return load


async def stock_update_baseline(bench, concurrency: int, documents: int, duration_s: float = 8.0) -> dict:
    """The baseline object of a result; measured once per run for each shape."""
    shape = (concurrency, documents)
    if shape not in bench.baselines:
        load = await asyncio.to_thread(conditional_update_rate, bench.stack.mongodb_uri, concurrency,
                                       duration_s, documents)
        bench.baselines[shape] = {
            "what": f"raw conditional stock update (available >= 1, $inc) on the same embedded server, "
                    f"{concurrency} concurrent callers over {documents} document(s)",
            "requests": load.requests, "throughput_per_s": round(load.throughput_per_s, 1), **load.latency(),
            "concurrency": concurrency, "duration_s": round(load.elapsed_s, 2)}
    return bench.baselines[shape]
