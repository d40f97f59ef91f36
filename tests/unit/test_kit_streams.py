"""Streams follow the settings: what differs is planned as an update, fixed settings are
reported and left alone, and JetStream being unavailable (a cluster electing) is waited
out rather than crashed on. The real cluster: tests/integration/test_jetstream_cluster.py."""
from __future__ import annotations

import asyncio
from dataclasses import replace

import nats.errors
import pytest
from nats.js.api import RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import BadRequestError, NotFoundError, ServerError, ServiceUnavailableError

from siyu_kit.events import streams
from siyu_kit.events.consumer import Consumer, Subscription, _tunables
from siyu.order.v1 import events_pb2


def wanted(**changes) -> StreamConfig:
    return replace(streams.stream_configs(replicas=3)[0], **changes)


def as_server_reports(config: StreamConfig) -> StreamConfig:
    """The server fills in what the process left unset."""
    filled = {f: v for f, v in {"max_msgs": -1, "max_bytes": -1, "max_msg_size": -1}.items()
              if getattr(config, f) is None}
    return replace(config, **filled)


def test_replicas_come_from_the_setting(monkeypatch):
    monkeypatch.delenv("SIYU_STREAM_REPLICAS", raising=False)
    assert {c.num_replicas for c in streams.stream_configs()} == {1}
    monkeypatch.setenv("SIYU_STREAM_REPLICAS", "3")
    assert {c.num_replicas for c in streams.stream_configs()} == {3}
    sub = Subscription.to("catalog-order-paid", events_pb2.OrderPaid, None)
    assert Consumer("catalog", None, sub).config().num_replicas == 3
    monkeypatch.setenv("SIYU_STREAM_REPLICAS", "0")
    with pytest.raises(ValueError, match="SIYU_STREAM_REPLICAS"):
        streams.stream_configs()


def test_an_equal_stream_plans_nothing():
    found = streams.plan(as_server_reports(wanted()), wanted())
    assert not found.update and found.fixed == {}


def test_replicas_subjects_limits_and_window_are_planned_as_changes():
    current = as_server_reports(wanted(num_replicas=1, subjects=["siyu.catalog.x"], max_age=60.0,
                                       duplicate_window=30.0))
    found = streams.plan(current, wanted())
    assert set(found.changes) == {"num_replicas", "subjects", "max_age", "duplicate_window"}
    assert found.changes["num_replicas"] == 3


def test_storage_and_retention_are_reported_not_changed():
    current = as_server_reports(wanted(num_replicas=1, storage=StorageType.MEMORY,
                                       retention=RetentionPolicy.WORK_QUEUE))
    found = streams.plan(current, wanted())
    assert set(found.changes) == {"num_replicas"}
    assert set(found.fixed) == {"storage", "retention"}


def test_a_consumer_with_other_replicas_is_reconciled():
    sub = Subscription.to("catalog-order-paid", events_pb2.OrderPaid, None)
    one, three = Consumer("catalog", None, sub, replicas=1), Consumer("catalog", None, sub, replicas=3)
    assert _tunables(one.config()) != _tunables(three.config())


class FlakyJetStream:
    """Answers like a cluster that is still electing for the first `unavailable` calls."""

    def __init__(self, unavailable: list[Exception], existing: StreamConfig | None = None):
        self.unavailable = list(unavailable)
        self.streams: dict[str, StreamConfig] = {}
        if existing is not None:
            self.streams[existing.name] = existing
        self.updates: list[StreamConfig] = []

    def _maybe_fail(self):
        if self.unavailable:
            raise self.unavailable.pop(0)

    async def stream_info(self, name: str) -> StreamInfo:
        self._maybe_fail()
        if name not in self.streams:
            raise NotFoundError()
        return StreamInfo(config=self.streams[name], state=None)

    async def add_stream(self, config: StreamConfig):
        self._maybe_fail()
        self.streams[config.name] = as_server_reports(config)

    async def update_stream(self, config: StreamConfig):
        self._maybe_fail()
        if config.storage != self.streams[config.name].storage:
            raise BadRequestError(description="stream configuration update can not change storage type")
        self.updates.append(config)
        self.streams[config.name] = as_server_reports(config)


async def test_unavailable_jetstream_is_waited_out_then_streams_are_created(monkeypatch):
    monkeypatch.setattr(streams, "retry_pause_s", lambda attempt: 0.0)
    js = FlakyJetStream([ServiceUnavailableError(), nats.errors.TimeoutError(), nats.errors.NoRespondersError()])
    outcomes = await streams.ensure_streams(js, configs=[wanted()])
    assert outcomes == {wanted().name: streams.CREATED}
    assert js.unavailable == []
    # The second run changes nothing.
    assert await streams.ensure_streams(js, configs=[wanted()]) == {wanted().name: streams.UNCHANGED}


async def test_a_stop_while_waiting_ends_the_wait():
    js = FlakyJetStream([ServiceUnavailableError()] * 1000)
    stop = asyncio.Event()
    stop.set()
    assert await streams.ensure_streams(js, stop=stop, configs=[wanted()]) is None


async def test_a_stream_the_server_refuses_to_create_is_reported_and_the_rest_still_made():
    refused = ServerError(code=500, err_code=10074, description="replicas > 1 not supported in non-clustered mode")

    class NotACluster(FlakyJetStream):
        async def add_stream(self, config):
            if config.num_replicas > 1:
                raise refused
            await super().add_stream(config)

    js = NotACluster([])
    one = wanted(name="SIYU_OTHER", subjects=["siyu.other.>"], num_replicas=1)
    assert await streams.ensure_streams(js, configs=[wanted(), one]) == {wanted().name: streams.REFUSED,
                                                                         one.name: streams.CREATED}
    assert not streams.transient(refused)


async def test_an_error_reading_the_stream_that_is_not_unavailability_is_raised():
    js = FlakyJetStream([ServerError(code=500, err_code=10039, description="jetstream not enabled for account")])
    with pytest.raises(ServerError):
        await streams.ensure_streams(js, configs=[wanted()])


async def test_a_one_replica_stream_is_brought_to_three_keeping_its_storage():
    old = as_server_reports(wanted(num_replicas=1, storage=StorageType.MEMORY))
    js = FlakyJetStream([], existing=old)
    assert await streams.ensure_streams(js, configs=[wanted()]) == {old.name: streams.UPDATED}
    assert js.streams[old.name].num_replicas == 3
    assert js.streams[old.name].storage == StorageType.MEMORY  # reported, not forced
    assert await streams.ensure_streams(js, configs=[wanted()]) == {old.name: streams.UNCHANGED}
    assert len(js.updates) == 1
