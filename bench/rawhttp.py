"""A minimal HTTP/1.1 client for bursts of thousands of presses: one kept-alive connection
per phone, each request written as ready bytes and its answer read by Content-Length.

httpx spends more CPU on a request than the gateway spends refusing one; with thousands of
presses on the same two cores as the suite, an httpx crowd measures itself (every answer
of a 4,000-press burst arrived after ~25 s, however fast the gateway answered). This client
keeps the load generator's share small, so the latencies are the suite's.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class RawResponse:
    status_code: int
    headers: dict[str, str]  # names in lower case
    content: bytes

    def json(self):
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


class RawPhone:
    """One phone's connection to the gateway, with the headers every request of it carries."""

    def __init__(self, host: str, port: int, headers: dict[str, str]):
        self.host, self.port = host, port
        self.headers = dict(headers)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, *, json_body: dict, headers: dict[str, str] | None = None,
                   timeout: float) -> RawResponse:
        """Raises TimeoutError when no whole answer came within `timeout` seconds."""
        if self._writer is None:
            await self.connect()
        body = json.dumps(json_body).encode()
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Content-Type: application/json",
                 f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in {**self.headers, **(headers or {})}.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        async with asyncio.timeout(timeout):
            await self._writer.drain()
            head = await self._reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            got = {}
            for line in header_lines:
                name, sep, value = line.partition(":")
                if sep:
                    got[name.strip().lower()] = value.strip()
            if "content-length" not in got:
                raise ValueError(f"an answer without Content-Length: {status_line}")
            content = await self._reader.readexactly(int(got["content-length"]))
        if got.get("connection", "").lower() == "close":
            await self.close()
        return RawResponse(int(status_line.split(" ", 2)[1]), got, content)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


async def connect_all(phones: list[RawPhone], at_once: int = 256) -> list[RawPhone]:
    """Opens every phone's connection before a burst, `at_once` at a time (a phone that
    loaded the page is connected); returns the phones."""
    opening = asyncio.Semaphore(at_once)

    async def connect(phone: RawPhone) -> None:
        async with opening:
            await phone.connect()

    await asyncio.gather(*(connect(p) for p in phones))
    return phones
