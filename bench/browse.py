"""browse: the product list and product detail through the gateway, against the same
two calls made straight to the catalog's gRPC API in the same run.

ratio_to_baseline = gateway throughput / direct gRPC throughput: the share of the
catalog's own rate that survives HTTP, JSON transcoding, the key check and the limiter.
"""
from __future__ import annotations

import grpc
from siyu.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from bench.harness import Bench, Load, Rejected, closed_loop, error_reason, result, send

CONCURRENCY = 16
DURATION_S = 15.0
WARMUP_S = 2.0


async def run(bench: Bench) -> dict:
    products = bench.shop["browse_products"]

    async with bench.devices(CONCURRENCY) as devices:
        async def through_gateway(i: int) -> None:
            # Every other call opens a product, the rest list the first page.
            path = f"/v1/products/{products[i // 2 % len(products)]}" if i % 2 else "/v1/products"
            resp = await send(devices[i % CONCURRENCY], "GET", path)
            if resp.status_code != 200:
                raise Rejected(error_reason(resp), resp.text[:200])

        await closed_loop(through_gateway, CONCURRENCY, WARMUP_S)
        gateway = await closed_loop(through_gateway, CONCURRENCY, DURATION_S)

    async with bench.grpc_channel("catalog") as ch:
        stub = catalog_pb2_grpc.CatalogServiceStub(ch)

        async def direct(i: int) -> None:
            md = bench.metadata()
            try:
                if i % 2:
                    await stub.GetProduct(catalog_pb2.GetProductRequest(product_id=products[i // 2 % len(products)]),
                                          metadata=md, timeout=30)
                else:
                    await stub.ListProducts(catalog_pb2.ListProductsRequest(), metadata=md, timeout=30)
            except grpc.aio.AioRpcError as error:
                raise Rejected(error.code().name, error.details() or "") from error

        await closed_loop(direct, CONCURRENCY, WARMUP_S)
        grpc_load = await closed_loop(direct, CONCURRENCY, DURATION_S)

    return result("browse", gateway, baseline(grpc_load), CONCURRENCY,
                  calls="half GET /v1/products (first page), half GET /v1/products/{id}",
                  products=len(products))


def baseline(load: Load) -> dict:
    return {"what": "ListProducts / GetProduct straight to the catalog's gRPC API with the gateway's metadata",
            **load.summary(), "concurrency": CONCURRENCY, "duration_s": round(load.elapsed_s, 2)}
