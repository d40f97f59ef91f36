"""The gateway's readiness is its own: with every service away it still takes traffic (each
route answers 503 UNAVAILABLE meanwhile), and /healthz/deps shows each service's health."""
from __future__ import annotations

import dataclasses
import socket

import httpx

from gateway.app import create_app
from siyu_kit.config import SERVICE_NAMES, GatewaySettings


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_readiness_is_the_gateways_own_and_the_services_are_shown_apart():
    settings = dataclasses.replace(GatewaySettings.load(), health_timeout_s=1.0,
                                   service_addrs={name: f"127.0.0.1:{unused_port()}" for name in SERVICE_NAMES})
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        assert (await client.get("/readyz")).status_code == 503, "not ready before it has started"
        async with app.router.lifespan_context(app):
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json() == {"status": "ready"}
            verbose = await client.get("/readyz?verbose")
            assert verbose.status_code == 200
            assert set(verbose.json()["services"]) == set(SERVICE_NAMES)
            assert "SERVING" not in verbose.json()["services"].values()
            deps = await client.get("/healthz/deps")
            assert deps.status_code == 503
            assert deps.json()["not_ready"] == sorted(SERVICE_NAMES)
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.post("/healthz/deps")).status_code == 405
        assert (await client.get("/readyz")).status_code == 503, "not ready once stopping"
