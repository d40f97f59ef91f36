"""Inspect and replay the dead-letter stream.

    python -m siyu_kit.events.dlq [--nats URL] list | show SEQ | replay SEQ | purge SEQ

A replay re-publishes the original event to its original subject with
`Nats-Msg-Id = <event_id>:replay:<seq>`: every consumer of that subject sees it again,
which is safe because consumers are idempotent by event id, and a replay repeated after
a failure between publish and delete is dropped by JetStream's duplicate window.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from datetime import datetime

import nats
from google.protobuf.message import DecodeError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from siyu_kit import config
from siyu_kit.events.outbox import decode
from siyu_kit.events.streams import DLQ_STREAM

H_ORIGINAL_SUBJECT = "Siyu-Original-Subject"
H_ERROR = "Siyu-Error"
H_DURABLE = "Siyu-Durable"
H_REPLAY_OF = "Siyu-Replay-Of"


class DeadLetterError(Exception):
    """A dead letter that is missing or cannot be replayed."""


@dataclass(frozen=True)
class DeadLetter:
    seq: int
    subject: str  # siyu.dlq.<service>.<durable>
    original_subject: str
    durable: str
    error: str
    data: bytes
    stored_at: datetime | None
    event_id: str = ""
    event_type: str = ""
    merchant_id: str = ""
    aggregate_id: str = ""
    payload_type: str = ""

    @property
    def service(self) -> str:
        parts = self.subject.split(".")
        return parts[2] if len(parts) > 2 else ""

    @property
    def readable(self) -> bool:
        return bool(self.event_id)


def _from_raw(raw) -> DeadLetter:
    headers = raw.headers or {}
    data = raw.data or b""
    fields = {}
    try:
        envelope = decode(data)
        fields = {"event_id": envelope.event_id, "event_type": envelope.type,
                  "merchant_id": envelope.merchant_id, "aggregate_id": envelope.aggregate_id,
                  "payload_type": envelope.payload.type_url.rsplit("/", 1)[-1]}
    except DecodeError:
        pass  # unreadable: shown without event fields
    return DeadLetter(seq=raw.seq, subject=raw.subject or "", original_subject=headers.get(H_ORIGINAL_SUBJECT, ""),
                      durable=headers.get(H_DURABLE, ""), error=headers.get(H_ERROR, ""), data=data,
                      stored_at=raw.time, **fields)


async def list_dead_letters(js: JetStreamContext, limit: int = 0) -> list[DeadLetter]:
    """Dead letters in stream order; `limit` > 0 stops after that many."""
    found: list[DeadLetter] = []
    seq = 1
    while not limit or len(found) < limit:
        try:
            raw = await js.get_msg(DLQ_STREAM, seq, subject=">", next=True)
        except NotFoundError:
            break  # past the last message, or no DLQ stream yet
        found.append(_from_raw(raw))
        seq = raw.seq + 1
    return found


async def get_dead_letter(js: JetStreamContext, seq: int) -> DeadLetter:
    try:
        return _from_raw(await js.get_msg(DLQ_STREAM, seq))
    except NotFoundError as exc:
        raise DeadLetterError(f"no dead letter with seq {seq}") from exc


async def replay(js: JetStreamContext, seq: int) -> DeadLetter:
    """Publish the event again to its original subject, then remove it from the DLQ."""
    letter = await get_dead_letter(js, seq)
    if not letter.original_subject:
        raise DeadLetterError(f"dead letter {seq} has no {H_ORIGINAL_SUBJECT} header")
    if not letter.readable:
        raise DeadLetterError(f"dead letter {seq} is not a readable event; inspect it with show, then purge it")
    await js.publish(letter.original_subject, letter.data,
                     headers={"Nats-Msg-Id": f"{letter.event_id}:replay:{seq}", H_REPLAY_OF: str(seq)})
    await js.delete_msg(DLQ_STREAM, seq)
    return letter


async def purge(js: JetStreamContext, seq: int) -> DeadLetter:
    """Drop one dead letter for good."""
    letter = await get_dead_letter(js, seq)
    await js.delete_msg(DLQ_STREAM, seq)
    return letter


def _one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_list(letters: list[DeadLetter]) -> str:
    header = f"{'SEQ':>6}  {'STORED':19}  {'ORIGINAL SUBJECT':34}  {'DURABLE':24}  {'EVENT':30}  " \
             f"{'TYPE':34}  {'MERCHANT':30}  ERROR"
    rows = [header]
    for d in letters:
        stored = d.stored_at.strftime("%Y-%m-%d %H:%M:%S") if d.stored_at else ""
        rows.append(f"{d.seq:>6}  {stored:19}  {d.original_subject:34}  {d.durable:24}  "
                    f"{d.event_id or '(unreadable)':30}  {d.event_type:34}  {d.merchant_id:30}  "
                    f"{_one_line(d.error, 120)}")
    rows.append(f"{len(letters)} dead letter(s)")
    return "\n".join(rows)


def format_show(d: DeadLetter) -> str:
    lines = [
        f"seq:              {d.seq}",
        f"dlq subject:      {d.subject}",
        f"stored at:        {d.stored_at.isoformat() if d.stored_at else ''}",
        f"service:          {d.service}",
        f"durable:          {d.durable}",
        f"original subject: {d.original_subject}",
        f"error:            {d.error}",
    ]
    if d.readable:
        lines += [f"event id:         {d.event_id}", f"event type:       {d.event_type}",
                  f"merchant:         {d.merchant_id}", f"aggregate:        {d.aggregate_id}",
                  f"payload type:     {d.payload_type}"]
    else:
        lines.append(f"data (unreadable, {len(d.data)} bytes): {d.data[:200]!r}")
    return "\n".join(lines)


async def _run(args: argparse.Namespace) -> int:
    try:
        nc = await nats.connect(args.nats, connect_timeout=3, max_reconnect_attempts=0, allow_reconnect=False)
    except Exception as error:  # noqa: BLE001 - any connect failure ends the command
        print(f"cannot reach NATS at {args.nats}: {error!r}", file=sys.stderr)
        return 2
    js = nc.jetstream()
    try:
        if args.command == "list":
            print(format_list(await list_dead_letters(js, args.limit)))
        elif args.command == "show":
            print(format_show(await get_dead_letter(js, args.seq)))
        elif args.command == "replay":
            letter = await replay(js, args.seq)
            print(f"replayed {letter.seq}: event {letter.event_id} to {letter.original_subject}")
        elif args.command == "purge":
            letter = await purge(js, args.seq)
            print(f"purged {letter.seq}: event {letter.event_id or '(unreadable)'}")
        return 0
    except DeadLetterError as error:
        print(str(error), file=sys.stderr)
        return 1
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siyu_kit.events.dlq",
                                     description="Inspect and replay Siyu's dead-letter stream.")
    parser.add_argument("--nats", default=config.load("dlq").nats_url, help="NATS URL (default: SIYU_NATS_URL)")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="every dead letter, oldest first")
    listing.add_argument("--limit", type=int, default=0, help="show at most this many")
    for name, text in (("show", "one dead letter in full"),
                       ("replay", "publish it again to its original subject and remove it"),
                       ("purge", "remove it without replaying")):
        sub.add_parser(name, help=text).add_argument("seq", type=int)
    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
