"""Wires settlement, the payment split, suppliers and the finance desk into the order
service: the use cases, the settle and split-execution jobs, and the consumers of the
order's own settled and refunded events. main.py hands in the provider's profit-sharing
and statement adapters (adapters/provider_adapters.py)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timezone

from siyu.common.v1 import common_pb2
from siyu.order.v1 import events_pb2 as order_events

from siyu_kit import service
from siyu_kit.config import env_seconds
from siyu_kit.events.consumer import Poison, Subscription
from siyu_kit.sealing import Sealer

from services.order.adapters import finance_messages as fm, split_store, supplier_store
from services.order.adapters.split_store import (MongoLedgerDays, MongoPaidTransactions, MongoSettleCandidates,
                                                 MongoSplitPostings, MongoSplitRecords, MongoSplitSettings)
from services.order.adapters.supplier_store import MongoSupplierLinks, MongoSuppliers
from services.order.application.finance import FinanceUseCases
from services.order.application.ports import Catalog, OpenRefunds, OrderRepository, SettingsRepository
from services.order.application.provider_ports import ProfitSharing, ProviderStatements
from services.order.application.settlement import SettlementUseCases
from services.order.application.suppliers import SupplierUseCases



def settle_interval_s() -> float:
    return env_seconds("ORDER_SETTLE_INTERVAL_S", 60)


def split_execute_interval_s() -> float:
    return env_seconds("ORDER_SPLIT_EXECUTE_INTERVAL_S", 30)


@dataclass
class FinanceParts:
    settlement: SettlementUseCases
    suppliers: SupplierUseCases
    finance: FinanceUseCases
    jobs: list[service.Job]
    subscriptions: list[Subscription]

    def attach(self, servicer):
        """Gives the OrderServicer's FinanceRpcs their use cases; returns the servicer."""
        servicer.suppliers, servicer.finance = self.suppliers, self.finance
        return servicer


def build(*, orders: OrderRepository, order_settings: SettingsRepository, open_refunds: OpenRefunds, sealer: Sealer,
          catalog: Catalog,
          profit_sharing: ProfitSharing, provider_statements: ProviderStatements) -> FinanceParts:
    split_store.ensure_indexes()
    supplier_store.ensure_indexes()
    suppliers_repo, links, postings = MongoSuppliers(sealer), MongoSupplierLinks(), MongoSplitPostings()
    splits, settings, ledger = MongoSplitRecords(), MongoSplitSettings(), MongoLedgerDays()
    settlement = SettlementUseCases(
        orders=orders, order_settings=order_settings, open_refunds=open_refunds, candidates=MongoSettleCandidates(),
        splits=splits, postings=postings, split_settings=settings, suppliers=suppliers_repo, links=links,
        ledger=ledger, transactions=MongoPaidTransactions(), sharing=profit_sharing)
    return FinanceParts(
        settlement=settlement,
        suppliers=SupplierUseCases(suppliers=suppliers_repo, links=links, postings=postings, catalog=catalog),
        finance=FinanceUseCases(splits=splits, postings=postings, settings=settings, ledger=ledger,
                                statements=provider_statements),
        jobs=[service.Job("order-settle", settle_interval_s(), settlement.settle_due),
              service.Job("order-split-execute", split_execute_interval_s(), settlement.execute_due)],
        subscriptions=subscriptions(settlement))


def subscriptions(settlement: SettlementUseCases) -> list[Subscription]:
    async def settled(envelope: common_pb2.EventEnvelope, payload: order_events.OrderSettled) -> None:
        o = payload.order
        if not o.order_id or not o.HasField("settled_at"):
            raise Poison("order.settled without an order or its settlement time")
        await settlement.write_split(fm.settled_order(envelope.merchant_id, o),
                                     o.settled_at.ToDatetime(tzinfo=timezone.utc))

    async def refunded(envelope: common_pb2.EventEnvelope, payload: order_events.OrderRefunded) -> None:
        o = payload.order
        if not o.order_id or not payload.refund.refund_id:
            raise Poison("order.refunded without an order or a refund")
        # A refund of a settled order arriving before its split is retried (LookupError).
        await settlement.reverse(payload.refund.refund_id, fm.settled_order(envelope.merchant_id, o),
                                 settled=o.HasField("settled_at"),
                                 at=envelope.occurred_at.ToDatetime(tzinfo=timezone.utc))

    return [Subscription.to("order-split-settled", order_events.OrderSettled, settled),
            Subscription.to("order-split-refunded", order_events.OrderRefunded, refunded)]
