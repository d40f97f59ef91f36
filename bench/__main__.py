"""Runs the benchmarks on a fresh suite: `python -m bench [--profile] [browse|checkout|checkout_value|flash_sale|late_events|coupon_grab|segments|live_room|settlement|bargain|points_mall|group_buy|overload …]`.

The suite starts on free ports with its data under var/bench/run (wiped first) and the
gateway's rate limits raised out of the way; a fresh merchant is seeded; each scenario
prints a table row and writes var/bench/<scenario>.json. With --profile, every process
also profiles each scenario per function (bench/profile.py).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys

import grpc
from siyu.catalog.v1 import catalog_pb2
from siyu.common.v1 import common_pb2

from bench import profile as profiler
from bench import (bargain, browse, checkout, checkout_value, coupon_grab, flash_sale, group_buy, late_events,
                   live_room, overload, points_mall, segments, settlement)
from bench.harness import Bench, table_header, table_row
from scripts.seed import Clients, seed_merchant
from siyu_kit import profiling
from siyu_kit.context import RequestContext
from siyu_kit.devstack import ROOT, Stack

SCENARIOS = {"browse": browse.run, "checkout": checkout.run, "checkout_value": checkout_value.run,
             "flash_sale": flash_sale.run, "late_events": late_events.run, "coupon_grab": coupon_grab.run,
             "segments": segments.run, "live_room": live_room.run, "settlement": settlement.run,
             "bargain": bargain.run,
             "points_mall": points_mall.run,
             "group_buy": group_buy.run,
             "overload": overload.run}
OUT_DIR = ROOT / "var" / "bench"
STACK_ENV = {
    # Far above what one machine can send: the benchmarks measure the suite, not the limiter.
    "SIYU_RATE_LIMIT_KEY_RPS": "1000000",
    "SIYU_RATE_LIMIT_MEMBER_RPS": "1000000",
    # Expired flash-sale orders and their reservations are swept within a second.
    "SIYU_ORDER_EXPIRY_INTERVAL_S": str(flash_sale.SWEEP_INTERVAL_S),
    "SIYU_CATALOG_SWEEP_INTERVAL_S": str(flash_sale.SWEEP_INTERVAL_S),
}
BROWSE_PRODUCTS = 40
CHECKOUT_SKUS = 8
STOCK_PER_SKU = 1_000_000


def seed(stack: Stack) -> dict:
    """The bench merchant: the demo catalog, products to browse, SKUs with deep stock."""
    clients = Clients.from_env(stack.env())
    shop = seed_merchant(clients, "bench", "Siyu Bench Store", {"H5": "bench-h5-channel-key-0001"},
                         ("owner", "bench-owner-pass"))
    as_owner = RequestContext(merchant_id=shop["merchant_id"], caller_kind="staff", caller_id=shop["staff_id"],
                              roles=("OWNER",), calling_service="bench").to_metadata()

    def product(code: str, title: str, skus: int, stock: int, price: int) -> catalog_pb2.Product:
        return clients.catalog.UpsertProduct(catalog_pb2.UpsertProductRequest(
            code=code, title=title, tags=["bench"], description=f"{title} — bench product",
            status=catalog_pb2.PRODUCT_STATUS_ON_SHELF,
            skus=[catalog_pb2.SkuInput(code=f"{code}-{n}", attributes={"尺码": f"S{n}"},
                                       list_price=common_pb2.Money(amount=price, currency="CNY"),
                                       initial_stock=stock) for n in range(skus)]),
            metadata=as_owner).product

    shop["browse_products"] = [product(f"bench-browse-{n}", f"基准商品 Bench Product {n}", 2, 1000, 9900 + n).product_id
                               for n in range(BROWSE_PRODUCTS)]
    shop["checkout_skus"] = [s.sku_id for s in product("bench-checkout", "结账基准 Checkout Tee", CHECKOUT_SKUS,
                                                       STOCK_PER_SKU, 5900).skus]
    shop["flash_sku"] = product("bench-flash", "秒杀基准 Flash Sale Lotion", 1, 10_000, 8900).skus[0].sku_id
    return shop


PROFILE_DIR = OUT_DIR / "profile"


async def run_scenarios(bench: Bench, names: list[str], profile: bool) -> None:
    print(f"\n{os.cpu_count()} cores; results in {OUT_DIR}")
    print(table_header(), flush=True)
    for name in names:
        pids = profiler.start(bench.stack) if profile else []
        outcome = await SCENARIOS[name](bench)
        bench.write(outcome)
        print(table_row(outcome), flush=True)
        if profile:
            processes = profiler.summarize(profiler.stop(pids, PROFILE_DIR, name))
            print(profiler.render(name, processes), flush=True)
            profiler.write(OUT_DIR, name, processes)


def raise_open_files_limit() -> None:
    """Thousands of buyers hold thousands of sockets; the suite inherits the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", metavar="scenario",
                        help=f"one or more of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--profile", action="store_true",
                        help="profile every process per function during each scenario (slows the suite)")
    args = parser.parse_args()
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")

    raise_open_files_limit()
    run_dir = OUT_DIR / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    env = dict(STACK_ENV)
    if args.profile:
        shutil.rmtree(PROFILE_DIR, ignore_errors=True)
        env[profiling.ENV] = str(PROFILE_DIR)
    stack = Stack.on_free_ports(run_dir, **env)
    try:
        stack.start_all()
        ready_s = stack.wait_ready(timeout=180)
        print(f"suite ready in {ready_s:.1f}s on free ports (logs: {run_dir}/log); seeding…", flush=True)
        bench = Bench(stack, seed(stack), OUT_DIR)
        asyncio.run(run_scenarios(bench, names, args.profile))
    except (RuntimeError, TimeoutError, grpc.RpcError) as error:
        print(f"bench: {error}", file=sys.stderr)
        sys.exit(1)
    finally:
        stack.stop_all()


if __name__ == "__main__":
    main()
