"""Durable pull consumers: ack after the effect is stored, nak with backoff on failure,
dead-letter after `max_deliver` attempts or at once for a message that cannot be read."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import nats.errors
import structlog
from google.protobuf.message import DecodeError, Message
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from siyu_kit import context, logging as slog
from siyu_kit.events.outbox import decode
from siyu_kit.events.streams import DLQ_PREFIX, stream_name
from siyu_kit.metrics import DEAD_LETTERS, EVENT_LAG, EVENTS_HANDLED
from siyu.common.v1 import common_pb2

log = slog.get("siyu.consumer")

Handler = Callable[[common_pb2.EventEnvelope, Message], Awaitable[None]]


class Poison(Exception):
    """The message can never be handled: dead-letter it without retrying."""


@dataclass(frozen=True)
class Subscription:
    """`durable` reads `subject` from the stream of the service that publishes it, and
    hands each event, with its payload unpacked into `payload_type`, to `handler`."""
    durable: str
    subject: str
    payload_type: type[Message]
    handler: Handler

    @property
    def source_stream(self) -> str:
        return stream_name(self.subject.split(".")[1])


def backoff_s(attempt: int) -> float:
    return min(0.5 * (2 ** (attempt - 1)), 30.0)


class Consumer:
    def __init__(self, service: str, js: JetStreamContext, sub: Subscription, max_deliver: int = 5):
        self.service = service
        self.js = js
        self.sub = sub
        self.max_deliver = max_deliver
        self._stopping = False

    async def run(self) -> None:
        psub = await self.js.pull_subscribe(
            self.sub.subject, durable=self.sub.durable, stream=self.sub.source_stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                                  max_deliver=self.max_deliver + 1, ack_wait=30.0),
        )
        while not self._stopping:
            try:
                messages = await psub.fetch(batch=16, timeout=1.0)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            except Exception:  # noqa: BLE001 - connection blips: try again shortly
                if self._stopping:
                    break
                log.warning("consumer.fetch_failed", durable=self.sub.durable, exc_info=True)
                await asyncio.sleep(0.5)
                continue
            for msg in messages:
                try:
                    await self._handle(msg)
                except Exception:  # noqa: BLE001 - e.g. an ack timed out: redelivered after ack_wait
                    log.exception("consumer.handle_failed", durable=self.sub.durable)

    def stop(self) -> None:
        self._stopping = True

    async def _handle(self, msg) -> None:
        attempt = msg.metadata.num_delivered
        durable = self.sub.durable
        try:
            envelope = decode(msg.data)
            payload = self.sub.payload_type()
            if not envelope.payload.Unpack(payload):
                raise Poison(f"payload is {envelope.payload.type_url}, not {payload.DESCRIPTOR.full_name}")
        except (DecodeError, Poison) as error:
            await self._dead_letter(msg, f"unreadable: {error}")
            return
        ctx = context.RequestContext(request_id=envelope.correlation_id, merchant_id=envelope.merchant_id,
                                     calling_service=self.service)
        token = context.use(ctx)
        structlog.contextvars.bind_contextvars(request_id=envelope.correlation_id,
                                               merchant_id=envelope.merchant_id, event_id=envelope.event_id)
        try:
            await self.sub.handler(envelope, payload)
        except Poison as error:
            await self._dead_letter(msg, str(error))
            return
        except Exception as error:  # noqa: BLE001 - transient until max_deliver says otherwise
            EVENTS_HANDLED.labels(self.service, durable, "retry").inc()
            if attempt >= self.max_deliver:
                await self._dead_letter(msg, f"failed {attempt} times: {error!r}")
            else:
                log.warning("consumer.retry", durable=durable, attempt=attempt, error=repr(error))
                await msg.nak(delay=backoff_s(attempt))
            return
        finally:
            structlog.contextvars.unbind_contextvars("request_id", "merchant_id", "event_id")
            context.reset(token)
        await msg.ack_sync()
        EVENTS_HANDLED.labels(self.service, durable, "ok").inc()
        EVENT_LAG.labels(self.service, durable).observe(
            max(0.0, time.time() - envelope.occurred_at.ToSeconds()))

    async def _dead_letter(self, msg, why: str) -> None:
        subject = f"{DLQ_PREFIX}.{self.service}.{self.sub.durable}"
        # NATS headers are single lines; the msg id makes a re-sent dead letter a no-op.
        headers = {"Siyu-Original-Subject": msg.subject, "Siyu-Error": " ".join(why.split())[:500],
                   "Siyu-Durable": self.sub.durable,
                   "Nats-Msg-Id": f"dlq:{msg.metadata.stream}:{msg.metadata.sequence.stream}:{self.sub.durable}"}
        await self.js.publish(subject, msg.data, headers=headers)
        await msg.term()
        DEAD_LETTERS.labels(self.service, self.sub.durable).inc()
        log.error("consumer.dead_lettered", durable=self.sub.durable, subject=msg.subject, why=why)
