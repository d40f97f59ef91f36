"""The gateway's HTTP protocol: what h11 refuses before the app runs gets the JSON error body."""
from __future__ import annotations

import asyncio
import json

import h11
import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from gateway.server import JsonErrorH11Protocol


class Transport(asyncio.Transport):
    """Collects what the protocol writes, as a socket would carry it."""

    def __init__(self):
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def app(scope, receive, send):  # never reached: the parser refuses first
    raise AssertionError("the app must not run")


def answer(raw: bytes) -> tuple[h11.Response, bytes, Transport]:
    loop = asyncio.new_event_loop()
    try:
        config = Config(app=app, http=JsonErrorH11Protocol, lifespan="off", log_level="critical")
        protocol = JsonErrorH11Protocol(config, ServerState(), app_state={}, _loop=loop)
        transport = Transport()
        protocol.connection_made(transport)
        protocol.data_received(raw)
    finally:
        loop.close()
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "gw")]))
    client.receive_data(transport.written)
    response, body = client.next_event(), b""
    while isinstance(event := client.next_event(), h11.Data):
        body += event.data
    return response, body, transport


@pytest.mark.parametrize("raw", [
    b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Evil: a\x00b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: gw\r\nBad Name: a\r\n\r\n",
    b"NOT HTTP AT ALL\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: -1\r\n\r\n",
])
def test_parser_refusals_answer_the_json_error_body(raw):
    response, body, transport = answer(raw)
    headers = {k.decode(): v.decode() for k, v in response.headers}
    assert response.status_code == 400 and headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert (error["code"], error["status"], error["reason"]) == ("INVALID_ARGUMENT", 400, "MALFORMED_HTTP")
    assert error["request_id"] == headers["x-request-id"] and error["request_id"].startswith("req_")
    assert transport.closed
