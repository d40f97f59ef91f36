"""Wires the order service for siyu_kit.service.run."""
from __future__ import annotations

from datetime import timedelta

from siyu.order.v1 import order_pb2, order_pb2_grpc

from siyu_kit import service
from siyu_kit.config import env_seconds
from siyu_kit.erasure import ErasureAcknowledgements
from siyu_kit.protos import utcnow
from siyu_kit.sealing import Sealer

from services.order.adapters.cart import MongoCarts
from services.order.adapters.catalog import CatalogClient
from services.order.adapters.content import ContentClient
from services.order.adapters.documents import OrderDoc, PaymentDoc
from services.order.adapters.ledger import Ledger
from services.order.adapters.payments import Payments
from services.order.adapters.refunds import Refunds
from services.order.adapters.repositories import MongoOrders, MongoSettings, ensure_indexes
from services.order.adapters.freight import MongoFreightTemplates, ensure_indexes as ensure_freight_indexes
from services.order.adapters.member import AddressClient, MemberClient, ReferralClient, WechatIdentityClient
from services.order.adapters import member_value as member_value_store
from services.order.adapters.member_value import MemberValueClient, MongoValueHoldIntents
from services.order.adapters.sandbox_payments import SandboxProvider
from services.order.adapters import wechat_pay_store
from services.order.adapters.wechat_pay import WechatPayClient, WechatRefunds, key_problems
from services.order.adapters.wechat_pay_store import SeenWechatNotifications, WechatCredentialStore
from services.order.application.cart import CartUseCases
from services.order.application.checkout import Checkout
from services.order.application.flash_orders import FlashOrderUseCases
from services.order.application.freight import FreightUseCases
from services.order.application.fulfilment import FulfilmentUseCases
from services.order.application.member_value import DEFAULT_VALUE_HOLD_GRACE, ValueHolds, ValueLifecycle
from services.order.application.orders import OrderUseCases
from services.order.application.payments import PaymentUseCases
from services.order.application.refunds import RefundUseCases
from services.order.application.reservations import ReservationUseCases
from services.order.application.settings import SettingsUseCases
from services.order.application.staff_orders import StaffOrderUseCases
from services.order.application.wechat_pay import WechatPayUseCases
from services.order.domain.payments import QUERY_AFTER, PaymentMethod
from services.order.domain.orders import DEFAULT_RESERVATION_GRACE
from services.order.entrypoint import events, personal_data_events
from services.order.adapters.personal_data_store import MemberOrderStore, MemberRecordStore
from services.order.application.personal_data import OrderDataExport, OrderErasure
from services.order.adapters.member_balance import MemberBalanceClient, MongoOrderTenders
from services.order.application.stored_value import StoredValueUseCases
from services.order.application.member_summary import MemberOrderSummaries
from services.order.adapters.member_summary_store import MongoMemberOrderFigures
from services.order.entrypoint import stored_value_events
from services.order.entrypoint.servicer import OrderServicer
from services.order.adapters import payout_store, provider_adapters
from services.order.adapters.wechat_funds import WechatFundsApi
from services.order.application.payouts import PayoutUseCases
from services.order.entrypoint import finance_wiring
from services.order.entrypoint import community_wiring
from services.order.entrypoint import bargain_wiring
from services.order.entrypoint import points_mall_wiring
from services.order.entrypoint import group_buy_wiring

NAME = "order"


def expiry_interval_s() -> float:
    return env_seconds("ORDER_EXPIRY_INTERVAL_S", 5)


def auto_confirm_interval_s() -> float:
    return env_seconds("ORDER_AUTO_CONFIRM_INTERVAL_S", 60)


def refund_resume_interval_s() -> float:
    return env_seconds("ORDER_REFUND_RESUME_INTERVAL_S", 30)


def payment_reconcile_interval_s() -> float:
    return env_seconds("ORDER_PAYMENT_RECONCILE_INTERVAL_S", 5)


def wechat_query_after() -> timedelta:
    return timedelta(seconds=env_seconds("ORDER_WECHAT_QUERY_AFTER_S", QUERY_AFTER.total_seconds()))


def reservation_grace() -> timedelta:
    return timedelta(seconds=env_seconds("ORDER_RESERVATION_GRACE_S", DEFAULT_RESERVATION_GRACE.total_seconds()))


def value_sweep_interval_s() -> float:
    return env_seconds("ORDER_VALUE_SWEEP_INTERVAL_S", 10)


def value_hold_grace() -> timedelta:
    return timedelta(seconds=env_seconds("ORDER_VALUE_HOLD_GRACE_S", DEFAULT_VALUE_HOLD_GRACE.total_seconds()))


def build(runtime: service.Runtime) -> service.Parts:
    ensure_indexes()
    ensure_freight_indexes()
    order_repo, payments, carts, entries = MongoOrders(), Payments(), MongoCarts(), Ledger()
    # One settings cache for every use case: a change saved here is seen by all at once.
    settings_repo = MongoSettings()
    catalog = CatalogClient(runtime.channel("catalog"))
    cart_cases = CartUseCases(carts=carts, catalog=catalog)
    # One freight template cache, shared like the settings cache.
    freight_repo = MongoFreightTemplates()
    sealer = Sealer.from_setting(runtime.settings.data_key)
    # Coupons and points: quoted and held at checkout, settled from the order's events.
    member_value_store.ensure_indexes()
    member_value = MemberValueClient(runtime.channel("member"))
    value_holds = ValueHolds(member_value=member_value, intents=MongoValueHoldIntents(), orders=order_repo,
                             grace=value_hold_grace())
    checkout = Checkout(catalog=catalog, members=MemberClient(runtime.channel("member")), settings=settings_repo,
                        carts=carts, freight=freight_repo,
                        addresses=AddressClient(runtime.channel("member"), sealer), member_value=member_value,
                        attributions=ContentClient(runtime.channel("content")))
    order_cases = OrderUseCases(orders=order_repo, catalog=catalog, checkout=checkout, carts=cart_cases,
                                reservation_grace=reservation_grace(),
                                attributions=checkout.attributions, refunds=Refunds(),
                                value_holds=value_holds, referrals=ReferralClient(runtime.channel("member")))
    provider = SandboxProvider(runtime.settings.sandbox_payment_secret)
    # WeChat Pay: credentials sealed per merchant; refunds of WECHAT payments go through it.
    wechat_pay_store.ensure_indexes()
    wechat_credentials = WechatCredentialStore(sealer)
    wechat_client = WechatPayClient(runtime.settings.wechat_pay_base_url, runtime.settings.wechat_pay_notify_url)
    refunders = {PaymentMethod.WECHAT: WechatRefunds(wechat_credentials, wechat_client)}
    refunds = Refunds()
    # Stored value: the member service keeps the balance an order pays with and refunds to.
    balances = MemberBalanceClient(runtime.channel("member"))
    payment_cases = PaymentUseCases(orders=order_repo, payments=payments, provider=provider, entries=entries,
                                    refunders=refunders, balances=balances, tenders=MongoOrderTenders())
    stored_value = StoredValueUseCases(orders=order_repo, packages=balances, balances=balances,
                                       settings=settings_repo)
    wechat_cases = WechatPayUseCases(
        base=payment_cases, payments=payments, credentials=wechat_credentials, wechat=wechat_client,
        seen=SeenWechatNotifications(), identities=WechatIdentityClient(runtime.channel("member")),
        refunds=refunds, query_after=wechat_query_after(),
        key_problems=lambda cmd: key_problems(cmd.private_key_pem, cmd.platform_public_key_pem))

    async def reconcile_payments() -> int:
        # WeChat payments whose notification never came are asked about first, then every
        # succeeded payment left open is settled, then refunds WeChat is still PROCESSING.
        return (await wechat_cases.query_due() + await payment_cases.reconcile()
                + await wechat_cases.query_refunds_due())

    # Money out: payouts to members, and the provider ports the payment split and the finance
    # desk use; WeChat Pay for a merchant with credentials, the sandbox for one without.
    payout_store.ensure_indexes()
    wechat_funds = WechatFundsApi(wechat_client)
    payouts = PayoutUseCases(payouts=payout_store.MongoPayouts(),
                             transfers=provider_adapters.transfers(wechat_credentials, wechat_funds),
                             identities=WechatIdentityClient(runtime.channel("member")))

    fulfilment = FulfilmentUseCases(orders=order_repo, refunds=refunds, settings=settings_repo)
    refund_cases = RefundUseCases(orders=order_repo, refunds=refunds, payments=payments, entries=entries,
                                  settings=settings_repo, provider=provider, stock=catalog,
                                  refunders=refunders, provider_query_after=wechat_query_after(),
                                  balances=balances)
    staff = StaffOrderUseCases(orders=order_repo, payments=payments, refunds=refunds, entries=entries)
    full_name = order_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name
    # Settlement, payment split, suppliers and the finance desk, over the same provider ports.
    finance = finance_wiring.build(orders=order_repo, order_settings=settings_repo, open_refunds=refunds,
                                   sealer=sealer, catalog=catalog,
                                   profit_sharing=provider_adapters.profit_sharing(wechat_credentials, wechat_funds),
                                   provider_statements=provider_adapters.provider_statements(wechat_credentials,
                                                                                             wechat_funds))
    # Community group buy: leaders, campaigns, pickup; its orders are placed and refunded as any.
    community = community_wiring.build(orders=order_repo, order_settings=settings_repo, open_refunds=refunds,
                                       catalog=catalog, checkout=checkout, order_cases=order_cases,
                                       refunds=refund_cases, sealer=sealer)
    # Bargains (砍价): activities over a catalog pool, helps, orders at the reached price.
    bargain = bargain_wiring.build(member_channel=runtime.channel("member"), pools=catalog, catalog=catalog, skus=catalog,
                                   orders=order_repo, settings=settings_repo, checkout=checkout,
                                   order_cases=order_cases)
    # Points mall: items whose units are catalog pools, ordered for points (plus cash).
    points_mall = points_mall_wiring.build(pools=catalog, catalog=catalog, orders=order_repo, settings=settings_repo,
                                           checkout=checkout, order_cases=order_cases)
    # Group buy: activities, groups, the slot consumer, the formed/failed consumers, the sweep.
    group_buy = group_buy_wiring.build(orders=order_repo, settings=settings_repo, catalog=catalog, pools=catalog,
                                       flash_catalog=catalog, checkout=checkout, order_cases=order_cases,
                                       refunds=payment_cases, member_channel=runtime.channel("member"))
    servicer = OrderServicer(
        order_cases, payment_cases, carts=cart_cases, checkout=checkout,
        settings=SettingsUseCases(settings_repo, finance.settlement.candidates), fulfilment=fulfilment,
        refunds=refund_cases, staff=staff,
        flash=FlashOrderUseCases(orders=order_repo, settings=settings_repo, catalog=catalog, checkout=checkout,
                                 order_cases=order_cases),
        reservations=ReservationUseCases(order_repo), freight=FreightUseCases(freight_repo), sealer=sealer,
        wechat=wechat_cases, stored_value=stored_value,
        member_summaries=MemberOrderSummaries(MongoMemberOrderFigures()),
        personal_data=OrderDataExport(MemberRecordStore()), payouts=payouts)
    # Each part gives the servicer its use cases and brings its own jobs, consumers and outboxes.
    parts = (finance, community, bargain, points_mall, group_buy)
    for part in parts:
        part.attach(servicer)
    return service.Parts(
        servicers=[(order_pb2_grpc.add_OrderServiceServicer_to_server, servicer, full_name)],
        outbox_collections=[OrderDoc._get_collection(), PaymentDoc._get_collection()] + _of_parts(
            parts, "outbox_collections"),
        subscriptions=events.subscriptions(payment_cases, ValueLifecycle(orders=order_repo, member_value=member_value))
        + stored_value_events.subscriptions(stored_value)
        + personal_data_events.subscriptions(
            OrderErasure(order_repo, MemberOrderStore(), ErasureAcknowledgements(runtime.channel("member")), utcnow))
        + _of_parts(parts, "subscriptions"),
        jobs=[service.Job("order-expiry", expiry_interval_s(), order_cases.expire_due),
              service.Job("order-auto-confirm", auto_confirm_interval_s(), fulfilment.auto_confirm_due),
              service.Job("order-refund-resume", refund_resume_interval_s(), refund_cases.resume_stalled),
              service.Job("order-payment-reconcile", payment_reconcile_interval_s(), reconcile_payments),
              service.Job("order-value-sweep", value_sweep_interval_s(), value_holds.sweep)]
        + _of_parts(parts, "jobs"),
    )


def _of_parts(parts, name: str) -> list:
    """What the parts bring of one kind (jobs, subscriptions, outbox collections); a part
    without any has no such field."""
    return [item for part in parts for item in getattr(part, name, ())]


def main() -> None:
    service.run(NAME, build)

