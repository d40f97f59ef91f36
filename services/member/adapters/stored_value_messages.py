"""Protobuf views of stored value (packages, balances, ledger entries, recharges) and the
balance events, built from the domain's movements."""
from __future__ import annotations

from datetime import datetime, timezone

from siyu.member.v1 import events_pb2, member_pb2

from siyu_kit.events.outbox import Event, event_for
from siyu_kit.protos import aware, timestamp

from services.member.application.stored_value import BalanceView
from services.member.domain.stored_value import (HOLD, RECHARGE, RECHARGE_REFUND, REFUND, RELEASE, SPEND,
                                                 BalanceEntry, Movement, PackageState, Recharge, RechargePackage)

PACKAGE_STATE = {PackageState.ACTIVE: member_pb2.RECHARGE_PACKAGE_STATE_ACTIVE,
                 PackageState.INACTIVE: member_pb2.RECHARGE_PACKAGE_STATE_INACTIVE}
PACKAGE_STATE_BACK = {number: state.value for state, number in PACKAGE_STATE.items()}
RECHARGE_STATE = {"CREDITED": member_pb2.RECHARGE_STATE_CREDITED, "REFUNDING": member_pb2.RECHARGE_STATE_REFUNDING,
                  "REFUNDED": member_pb2.RECHARGE_STATE_REFUNDED}
ENTRY_KIND = {"RECHARGE": member_pb2.BALANCE_ENTRY_KIND_RECHARGE,
              "ORDER_PAYMENT": member_pb2.BALANCE_ENTRY_KIND_ORDER_PAYMENT,
              "ORDER_REFUND": member_pb2.BALANCE_ENTRY_KIND_ORDER_REFUND,
              "RECHARGE_REFUND": member_pb2.BALANCE_ENTRY_KIND_RECHARGE_REFUND}
# Each movement's event: its kind on the wire and its subject's verb (siyu.member.balance.<verb>).
MOVEMENT = {RECHARGE: (events_pb2.BALANCE_MOVEMENT_RECHARGE, "recharged"),
            HOLD: (events_pb2.BALANCE_MOVEMENT_HOLD, "held"),
            RELEASE: (events_pb2.BALANCE_MOVEMENT_RELEASE, "released"),
            SPEND: (events_pb2.BALANCE_MOVEMENT_ORDER_PAYMENT, "spent"),
            REFUND: (events_pb2.BALANCE_MOVEMENT_ORDER_REFUND, "refunded"),
            RECHARGE_REFUND: (events_pb2.BALANCE_MOVEMENT_RECHARGE_REFUND, "recharge_refunded")}


def _ms_time(ms: int) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)


def package_proto(p: RechargePackage) -> member_pb2.RechargePackage:
    return member_pb2.RechargePackage(package_id=p.id, name=p.name, price=p.price, bonus=p.bonus,
                                      state=PACKAGE_STATE[p.state], created_at=timestamp(aware(p.created_at)))


def balance_proto(b: BalanceView) -> member_pb2.Balance:
    return member_pb2.Balance(principal=b.principal, bonus=b.bonus, available=b.available, held=b.held)


def entry_proto(e: BalanceEntry) -> member_pb2.BalanceEntry:
    return member_pb2.BalanceEntry(entry_id=e.id, kind=ENTRY_KIND[e.kind], principal=e.principal, bonus=e.bonus,
                                   cause_id=e.cause_id, created_at=timestamp(aware(e.created_at)))


def recharge_proto(r: Recharge) -> member_pb2.Recharge:
    return member_pb2.Recharge(recharge_id=r.id, order_id=r.order_id, package_id=r.package_id, principal=r.principal,
                               bonus=r.bonus, state=RECHARGE_STATE[r.state], created_at=timestamp(_ms_time(r.created_ms)))


def changed_event(merchant_id: str, m: Movement, movement_id: str) -> Event | None:
    """The event of a movement that changed the balance or how it is held (None: the
    movement changed neither, e.g. a release of an order that held nothing)."""
    if m.kind not in MOVEMENT or not (m.principal or m.bonus or m.held_principal or m.held_bonus):
        return None
    kind, verb = MOVEMENT[m.kind]
    recharge_id = m.recharge.id if m.recharge is not None else ""
    payload = events_pb2.BalanceChanged(member_id=m.member_id, movement=kind, principal=m.principal, bonus=m.bonus,
                                        cause_id=m.source_id, order_id=m.order_id, recharge_id=recharge_id,
                                        held_principal=m.held_principal, held_bonus=m.held_bonus)
    # Each movement is its own one-version record on the wire.
    return event_for(payload, merchant_id=merchant_id, aggregate_id=movement_id, aggregate_version=1, verb=verb)
