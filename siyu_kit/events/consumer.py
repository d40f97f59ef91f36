"""Durable pull consumers: ack after the effect is stored, nak with backoff on failure,
dead-letter after `max_deliver` attempts or at once for a message that cannot be read.

A consumer supervises itself: when subscribing or fetching fails it subscribes again,
with backoff, until it is stopped, and tells the service's health check how long it has
been down. Each subscription first brings the durable's settings (max deliveries, ack
wait, backoff, replicas) up to date with this process's, so a changed SIYU_MAX_DELIVER or
SIYU_STREAM_REPLICAS applies."""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import nats.errors
import structlog
from google.protobuf.message import DecodeError, Message
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from siyu_kit import context, logging as slog
from siyu_kit.events.outbox import decode
from siyu_kit.events.subjects import subject_of
from siyu_kit.events.streams import DLQ_PREFIX, stream_name, stream_replicas
from siyu_kit.metrics import (CONSUMER_PENDING, CONSUMER_UP, DEAD_LETTERS, EVENT_LAG, EVENTS_HANDLED,
                              REDELIVERIES)
from siyu.common.v1 import common_pb2

log = slog.get("siyu.consumer")

Handler = Callable[[common_pb2.EventEnvelope, Message], Awaitable[None]]

ACK_WAIT_S = 30.0
# Behind: up to this many messages per fetch, each fetch answered at once from the backlog.
BATCH = 16
BEHIND_WAIT_S = 1.0
# Caught up: one long poll for the next message, answered the moment it is stored. A fetch
# of one message returns on its arrival; a fetch of a batch would wait out its time for the
# rest of the batch, holding a lone event back by up to that time.
IDLE_WAIT_S = 5.0
# How often the consumer reads its lag from the server, which also notices a lost durable.
INFO_INTERVAL_S = 5.0


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

    @classmethod
    def to(cls, durable: str, payload_type: type[Message], handler: Handler, verb: str = "") -> "Subscription":
        """Subscribes by message type: the subject is the one its proto declares."""
        return cls(durable, subject_of(payload_type, verb), payload_type, handler)

    @property
    def source_stream(self) -> str:
        return stream_name(self.subject.split(".")[1])


def backoff_s(attempt: int) -> float:
    return min(0.5 * (2 ** (attempt - 1)), 30.0)


def restart_backoff_s(failures: int) -> float:
    """Pause before subscribing again: 0.5 s doubling to 5 s, jittered so replicas do
    not retry in step."""
    return min(0.5 * (2 ** (failures - 1)), 5.0) * random.uniform(0.8, 1.2)


class Consumer:
    def __init__(self, service: str, js: JetStreamContext, sub: Subscription, max_deliver: int = 5,
                 ack_wait_s: float = ACK_WAIT_S, replicas: int | None = None):
        self.service = service
        # As many copies as the streams (SIYU_STREAM_REPLICAS): a node going takes neither
        # the durable nor its position away.
        self.replicas = stream_replicas() if replicas is None else replicas
        self.js = js
        self.sub = sub
        self.max_deliver = max_deliver
        self.ack_wait_s = ack_wait_s
        self._stop = asyncio.Event()
        # Down until the first subscription succeeds.
        self._down_since: float | None = time.monotonic()

    def down_for(self) -> float:
        """Seconds since the consumer stopped receiving messages; 0 while it receives."""
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    def config(self) -> ConsumerConfig:
        durable = self.sub.durable
        # The server stops one delivery after ours, so our last attempt still arrives and
        # is dead-lettered rather than silently dropped.
        return ConsumerConfig(name=durable, durable_name=durable, filter_subject=self.sub.subject,
                              ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                              max_deliver=self.max_deliver + 1, ack_wait=self.ack_wait_s,
                              num_replicas=self.replicas)

    async def run(self) -> None:
        """Consume until stopped; every failure leads to a new subscription after a pause."""
        labels = (self.service, self.sub.durable)
        failures = 0
        while not self._stop.is_set():
            psub = None
            try:
                psub = await self._subscribe()
                failures = 0
                self._down_since = None
                CONSUMER_UP.labels(*labels).set(1)
                await self._consume(psub)
            except Exception as error:  # noqa: BLE001 - whatever broke, subscribe again
                if self._stop.is_set():
                    break
                failures += 1
                if self._down_since is None:
                    self._down_since = time.monotonic()
                CONSUMER_UP.labels(*labels).set(0)
                log.warning("consumer.down", durable=self.sub.durable, failures=failures,
                            down_s=round(self.down_for(), 1), error=repr(error)[:300])
                await self._pause(restart_backoff_s(failures))
            finally:
                if psub is not None:
                    try:
                        await psub.unsubscribe()
                    except Exception:  # noqa: BLE001 - the connection may already be gone
                        pass
        CONSUMER_UP.labels(*labels).set(0)

    def stop(self) -> None:
        self._stop.set()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        """Bind to the durable, first creating it or updating the settings the server
        lets change (an old process may have created it with other ones)."""
        stream, wanted = self.sub.source_stream, self.config()
        try:
            current = (await self.js.consumer_info(stream, self.sub.durable)).config
        except NotFoundError:
            current = None  # missing consumer: pull_subscribe creates it; missing stream: it fails
        if current is not None and _tunables(current) != _tunables(wanted):
            await self.js.add_consumer(stream, config=wanted)
            log.info("consumer.reconciled", durable=self.sub.durable, was=_tunables(current),
                     now=_tunables(wanted))
        return await self.js.pull_subscribe(self.sub.subject, durable=self.sub.durable, stream=stream,
                                            config=wanted)

    async def _consume(self, psub) -> None:
        """Fetch and handle until stopped; a failed fetch or a lost durable raises."""
        next_info = 0.0
        behind = 0  # messages the server still held for this durable when the last batch left it
        while not self._stop.is_set():
            if time.monotonic() >= next_info:
                await self._observe()
                next_info = time.monotonic() + INFO_INTERVAL_S
            try:
                messages = await self._fetch(psub, behind)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                behind = 0
                continue  # nothing to do (or NATS reconnecting: the subscription resumes)
            if not messages:
                continue  # stopped while waiting
            behind = messages[-1].metadata.num_pending or 0
            # Every fetched message not yet handled stays claimed while earlier ones run.
            waiting = list(messages)
            claim = asyncio.create_task(self._keep_claim(waiting))
            try:
                for msg in messages:
                    if self._stop.is_set():
                        break  # the rest of the batch is redelivered after the ack wait
                    try:
                        await self._handle(msg)
                    except Exception:  # noqa: BLE001 - e.g. an ack timed out: redelivered after ack_wait
                        log.exception("consumer.handle_failed", durable=self.sub.durable)
                    waiting.remove(msg)
            finally:
                claim.cancel()

    async def _fetch(self, psub, behind: int) -> list:
        if behind:
            return await psub.fetch(batch=min(BATCH, behind), timeout=BEHIND_WAIT_S)
        # The long poll gives way to a stop, so a stopping service does not wait it out (a
        # message it took meanwhile is redelivered after the ack wait).
        poll = asyncio.ensure_future(psub.fetch(batch=1, timeout=IDLE_WAIT_S))
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait((poll, stopped), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # This consumer itself is cancelled: no fetch may poll on behind it.
            poll.cancel()
            poll.add_done_callback(_read_outcome)
            raise
        finally:
            stopped.cancel()
        if not poll.done():
            poll.cancel()
            await asyncio.gather(poll, return_exceptions=True)
            return []
        return poll.result()

    async def _observe(self) -> None:
        """Record the lag; NotFoundError (durable or stream gone) ends this subscription."""
        try:
            info = await self.js.consumer_info(self.sub.source_stream, self.sub.durable)
        except (nats.errors.TimeoutError, asyncio.TimeoutError):
            return
        CONSUMER_PENDING.labels(self.service, self.sub.durable).set(info.num_pending or 0)

    async def _keep_claim(self, messages: list) -> None:
        """Tell the server every third of the ack wait that these messages are still being
        worked on, so a slow handler's message is not redelivered to another replica."""
        while True:
            await asyncio.sleep(self.ack_wait_s / 3)
            for msg in list(messages):
                try:
                    await msg.in_progress()
                except Exception:  # noqa: BLE001 - at worst it is redelivered; handlers are idempotent
                    log.warning("consumer.in_progress_failed", durable=self.sub.durable, exc_info=True)

    async def _handle(self, msg) -> None:
        attempt = msg.metadata.num_delivered
        durable = self.sub.durable
        if attempt > 1:
            REDELIVERIES.labels(self.service, durable).inc()
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


def _tunables(config: ConsumerConfig) -> tuple:
    """The settings a running durable may have changed: deliveries, ack wait, backoff,
    replicas (0 means the stream's)."""
    return (config.max_deliver, float(config.ack_wait or 0), tuple(config.backoff or ()),
            config.num_replicas or 0)


def _read_outcome(future: asyncio.Future) -> None:
    """Reads how an abandoned fetch ended, so its error (the connection closed under
    it) is not reported as never retrieved."""
    if not future.cancelled():
        future.exception()
