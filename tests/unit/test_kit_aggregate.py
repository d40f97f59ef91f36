"""The aggregate kit: one state-machine helper, recorded events, the conflict retry and
subjects declared on event messages."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pytest
from siyu.catalog.v1 import events_pb2 as catalog_events
from siyu.order.v1 import events_pb2 as order_events

from siyu_kit import retry
from siyu_kit.aggregate import Aggregate, Move, StaleVersion, StateMachine
from siyu_kit.errors import Conflict, FailedPrecondition
from siyu_kit.events import outbox
from siyu_kit.events.consumer import Subscription
from siyu_kit.events.subjects import subject_of, subjects_of


class Light(str, Enum):
    RED = "RED"
    GREEN = "GREEN"
    OFF = "OFF"


MACHINE = StateMachine("light", {Light.RED: {Light.GREEN, Light.OFF}, Light.GREEN: {Light.RED, Light.OFF},
                                 Light.OFF: set()}, refused_reason="LIGHT_NOT_SWITCHABLE")


def test_state_machine_applies_repeats_and_refuses():
    assert MACHINE.decide(Light.RED, Light.GREEN) is Move.APPLY
    assert MACHINE.decide(Light.OFF, Light.OFF) is Move.REPEAT
    assert MACHINE.decide(Light.OFF, Light.RED) is Move.REFUSE
    assert MACHINE.is_final(Light.OFF) and not MACHINE.is_final(Light.RED)
    with pytest.raises(FailedPrecondition) as refused:
        MACHINE.require(Light.OFF, Light.GREEN)
    assert refused.value.reason == "LIGHT_NOT_SWITCHABLE" and "OFF" in refused.value.message


def test_state_machine_refuses_a_target_that_is_no_state():
    with pytest.raises(ValueError):
        StateMachine("x", {Light.RED: {Light.GREEN}}, refused_reason="X")


@dataclass
class Lamp(Aggregate):
    id: str
    merchant_id: str
    version: int
    state: Light = Light.RED

    def switch(self, target: Light) -> None:
        MACHINE.require(self.state, target)
        self.state = target
        self.record(("switched", target, self.next_version))


def test_an_aggregate_records_events_that_are_pulled_once():
    lamp = Lamp("lmp_1", "mch_1", 4)
    lamp.switch(Light.GREEN)
    assert lamp.pull_events() == [("switched", Light.GREEN, 5)]
    assert lamp.pull_events() == []


async def test_retry_reads_again_after_a_lost_compare_and_set_then_gives_up():
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise StaleVersion()
        return "done"

    assert await retry.on_conflict(flaky, gave_up="busy") == "done"

    async def always_stale():
        raise StaleVersion()

    with pytest.raises(Conflict) as gave_up:
        await retry.on_conflict(always_stale, gave_up="the lamp kept changing", reason="LAMP_BUSY")
    assert gave_up.value.reason == "LAMP_BUSY"


def test_subjects_are_declared_on_the_event_messages():
    assert subject_of(order_events.OrderPaid) == "siyu.order.order.paid"
    assert subject_of(catalog_events.ReservationChanged, "unfulfillable") == "siyu.catalog.reservation.unfulfillable"
    assert len(subjects_of(catalog_events.ReservationChanged)) == 4
    with pytest.raises(ValueError):
        subject_of(catalog_events.ReservationChanged)
    sub = Subscription.to("d", order_events.OrderCancelled, handler=None)
    assert sub.subject == "siyu.order.order.cancelled" and sub.source_stream == "SIYU_ORDER"


def test_committed_wakes_whoever_registered_with_the_document():
    woken = []
    remove = outbox.on_commit(lambda collection, doc_id, event_ids: woken.append((collection, doc_id, event_ids)))
    try:
        outbox.committed("orders", "ord_1", ["evt_1"])
        outbox.committed()
    finally:
        remove()
    outbox.committed()
    assert woken == [("orders", "ord_1", ["evt_1"]), (None, None, None)]
