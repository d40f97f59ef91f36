"""The staff's member views in the member service's wiring: search and the 360° view over
the member stores, the member's facts and the order service's summary."""
from __future__ import annotations

from services.member.adapters import member_view_store
from services.member.adapters.order_summary import OrderSummaryClient
from services.member.application.member_views import MemberViews
from services.member.application.ports import MerchantRepository, PhoneBook, PointsLedger
from siyu_kit.service import Runtime


def use_cases(runtime: Runtime, merchants: MerchantRepository, ledger: PointsLedger,
              phones: PhoneBook) -> MemberViews:
    member_view_store.ensure_indexes()
    return MemberViews(member_view_store.MemberSearchStore(), member_view_store.MemberFactsStore(),
                       member_view_store.MemberOverviewStore(), merchants, ledger, phones,
                       OrderSummaryClient(runtime.channel("order")))
