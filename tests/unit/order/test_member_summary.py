"""One member's orders in figures for the member 360° view: paid orders and amounts, refunds,
the newest order, recharge orders left out, the calling merchant only, a bad id named."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from services.order.application.member_summary import MemberOrderSummaries, OrderFigure, summarize
from siyu_kit.errors import InvalidArgument
from siyu_kit.ids import new_id
from tests.fakes.callers import caller

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def figure(state: str, payable: int, *, refunded=0, days_ago=0, paid=None, recharge=False) -> OrderFigure:
    return OrderFigure(new_id("ord"), state, payable, refunded, NOW - timedelta(days=days_ago),
                       paid if paid is not None else state not in {"PENDING_PAYMENT", "CANCELLED"}, recharge)


def test_paid_orders_their_amounts_refunds_and_the_newest():
    newest = figure("PENDING_PAYMENT", 500, days_ago=0)
    figures = [figure("COMPLETED", 9_900, days_ago=5, refunded=1_000), figure("PAID", 4_000, days_ago=2), newest,
               figure("CANCELLED", 700, days_ago=3),
               figure("CANCELLED", 800, days_ago=4, paid=True, refunded=800),  # paid, its units were gone
               figure("COMPLETED", 10_000, days_ago=1, recharge=True)]
    s = summarize(figures)
    assert (s.order_count, s.paid_count, s.paid_amount, s.refunded_amount) == (5, 3, 14_700, 1_800)
    assert s.last == newest


def test_no_orders():
    s = summarize([])
    assert s.order_count == 0 and s.last is None


class Figures:
    def __init__(self):
        self.items: dict[tuple[str, str], list[OrderFigure]] = {}
        self.reads = 0

    async def of_member(self, merchant_id: str, member_id: str) -> list[OrderFigure]:
        self.reads += 1
        return self.items.get((merchant_id, member_id), [])


async def test_the_calling_merchants_orders_only_and_a_bad_id_named():
    figures = Figures()
    shop, other, member = new_id("mch"), new_id("mch"), new_id("mem")
    figures.items[(shop, member)] = [figure("PAID", 100)]
    use = MemberOrderSummaries(figures)
    with caller(shop, service="member"):
        assert (await use.summarize(member)).paid_amount == 100
    with caller(other, service="member"):
        assert (await use.summarize(member)).order_count == 0
    with caller(shop, service="member"), pytest.raises(InvalidArgument):
        await use.summarize("nope")
    assert figures.reads == 2
