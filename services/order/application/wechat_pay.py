"""WeChat Pay (API v3, JSAPI / mini-program): paying an order, WeChat's notifications,
asking WeChat about a payment whose notification never came, and the merchant's
credentials.

A payment made here is an ordinary Payment of method WECHAT: once WeChat's statement that
the money was taken is verified, it goes through the same path as every provider's
(`PaymentUseCases.succeeded`): the order takes it, or it is sent back."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from siyu_kit import context, logging as slog
from siyu_kit.aggregate import StaleVersion
from siyu_kit.context import CHANNELS
from siyu_kit.errors import FailedPrecondition, InvalidArgument, NotFound, Unauthenticated, Violations
from siyu_kit.ids import is_id
from siyu_kit.protos import epoch_ms, to_storage_precision, utcnow

from services.order.application.payments import PaymentUseCases, auto_refund_id
from services.order.application.ports import (PaymentRepository, RefundRepository, SeenNotifications,
                                              WechatCredentialRepository, WechatIdentities, WechatPay)
from services.order.domain.payments import (QUERY_AFTER, TRADE_FINAL_FAILURES, TRADE_SUCCESS, JsapiParams, Payment,
                                            PaymentMethod, PaymentState, RefundResult, TradeResult,
                                            WechatCredentials, notification_fresh, trade_mismatch)
from services.order.domain.refunds import ProviderStatus, Refund

log = slog.get("siyu.order.wechat_pay")

WECHAT_LOGIN_REQUIRED = "WECHAT_LOGIN_REQUIRED"
QUERY_BATCH = 50
NOT_CONFIGURED = "WECHAT_PAY_NOT_CONFIGURED"
BAD_SIGNATURE = "BAD_SIGNATURE"
STALE = "NOTIFICATION_STALE"
REPLAYED = "NOTIFICATION_REPLAYED"
UNREADABLE = "NOTIFICATION_UNREADABLE"
MISMATCH = "NOTIFICATION_MISMATCH"
METHOD_MISMATCH = "PAYMENT_METHOD_MISMATCH"
REFUND_EVENT = "REFUND."


@dataclass(frozen=True)
class NotificationHeaders:
    """What WeChat sends with a notification besides its body."""
    timestamp: str
    nonce: str
    signature: str
    serial: str


@dataclass(frozen=True)
class CredentialsInput:
    channel: str
    app_id: str
    mch_id: str
    api_v3_key: str
    private_key_pem: str
    serial_no: str
    platform_public_key_pem: str
    platform_public_key_id: str


@dataclass
class WechatPayUseCases:
    base: PaymentUseCases
    payments: PaymentRepository
    credentials: WechatCredentialRepository
    wechat: WechatPay
    seen: SeenNotifications
    # The member's openid in the paying channel's app: the payer is who the token says.
    identities: WechatIdentities
    # Our refunds, whose money WeChat confirms later (REFUND.* notifications, the query job).
    refunds: RefundRepository | None = None
    # Checks that a PEM key loads (adapters' business; the use case only asks).
    key_problems: Callable[[CredentialsInput], list[tuple[str, str]]] = lambda _: []
    # A PENDING payment is asked about this long after WeChat gave its prepay id.
    query_after: timedelta = QUERY_AFTER
    clock: Callable[[], datetime] = utcnow

    def _now(self) -> datetime:
        return to_storage_precision(self.clock())

    async def _credentials(self, merchant_id: str, channel: str) -> WechatCredentials:
        found = await self.credentials.get(merchant_id, channel)
        if found is None:
            raise FailedPrecondition(f"WeChat Pay is not set up for channel {channel or '(none)'}",
                                     reason=NOT_CONFIGURED)
        return found

    # ---- member ---------------------------------------------------------------------

    async def pay(self, order_id: str, idempotency_key: str,
                  use_balance: bool = False) -> tuple[Payment, JsapiParams | None]:
        """Starts (or repeats) a WeChat payment of the order and returns what
        `wx.requestPayment` needs. Idempotent by the key: a repeat signs the same prepay id
        again. The payer is the calling member's openid in the channel's WeChat app (read
        from the member service); a member who never signed in there with WeChat is
        refused with WECHAT_LOGIN_REQUIRED before anything is written. With `use_balance`
        the member's balance pays first and WeChat the rest; when the balance pays it all,
        no prepay is made and there are no parameters (None)."""
        ctx = context.current()
        member_id = ctx.require_member()
        creds = await self._credentials(ctx.merchant_id, ctx.channel)
        payer_openid = await self.identities.openid(member_id, creds.channel)
        if not payer_openid:
            raise FailedPrecondition(f"the member has no WeChat identity in channel {creds.channel}; sign in "
                                     f"with WeChat there first", reason=WECHAT_LOGIN_REQUIRED)
        payment = await self.base.pay(order_id, idempotency_key, PaymentMethod.WECHAT.value, use_balance=use_balance)
        if payment.method is PaymentMethod.BALANCE and use_balance:
            return payment, None
        if payment.method is not PaymentMethod.WECHAT:
            raise FailedPrecondition("this idempotency key started a payment of another method",
                                     reason=METHOD_MISMATCH)
        if payment.state is not PaymentState.PENDING:
            raise FailedPrecondition(f"the payment is {payment.state.value}", reason="ORDER_NOT_PAYABLE")
        if not payment.prepay_id:
            # WeChat answers a repeated out_trade_no with the same prepay id, so a lost save
            # here is repaired by the next call.
            prepay_id = await self.wechat.prepay(creds, payment, payer_openid, f"order {payment.order_id}")
            payment.prepare(creds.channel, prepay_id, self._now(), self.query_after)
            try:
                await self.payments.save(payment)
            except StaleVersion:
                # A concurrent call with the same key saved it first (WeChat gave it the
                # same prepay id): its payment is the one.
                payment = await self.payments.get(payment.merchant_id, payment.id)
                if payment is None or not payment.prepay_id:
                    raise
            log.info("payment.prepaid", payment_id=payment.id, channel=creds.channel)
        return payment, self.wechat.jsapi_params(creds, payment.prepay_id)

    # ---- WeChat's notification --------------------------------------------------------

    async def notify(self, merchant_id: str, headers: NotificationHeaders, body: str) -> tuple[Payment, bool]:
        """A notification from WeChat. Refused, changing nothing, unless its signature
        verifies with the platform key it names, it is fresh, it was not seen before and
        it decrypts with the API v3 key; then the payment succeeds through the same path
        as every provider's."""
        creds = await self._verified(merchant_id, headers, body)
        now = self._now()
        if self.wechat.event_type(body).startswith(REFUND_EVENT):
            return await self._refund_notified(merchant_id, creds, headers, body, now)
        trade = self.wechat.open_notification(creds, body)
        if trade is None:
            raise Unauthenticated("the notification's resource does not decrypt", reason=UNREADABLE)
        if not await self.seen.remember(merchant_id, f"{headers.timestamp}:{headers.nonce}", now):
            raise Unauthenticated("the notification was delivered already", reason=REPLAYED)
        payment = await self.payments.get(merchant_id, trade.out_trade_no) if is_id(trade.out_trade_no, "pay") \
            else None
        if payment is None or payment.method is not PaymentMethod.WECHAT:
            raise NotFound(f"payment {trade.out_trade_no} not found")
        if payment.channel and payment.channel != creds.channel:
            # Two channels of one WeChat Pay merchant share its platform key: the payment's
            # own channel says which app it was for.
            creds = await self.credentials.get(merchant_id, payment.channel) or creds
        self._check(payment, trade, creds)
        log.info("payment.notified", payment_id=payment.id, trade_state=trade.trade_state)
        return await self._apply(payment, trade)

    async def _verified(self, merchant_id: str, headers: NotificationHeaders, body: str) -> WechatCredentials:
        """The credentials whose platform key signed the notification, refused unless it
        verifies and is fresh."""
        candidates = [c for c in await self.credentials.of_merchant(merchant_id)
                      if c.platform_public_key_id == headers.serial] if is_id(merchant_id, "mch") else []
        creds = next((c for c in candidates if self.wechat.verify_notification(
            c, headers.timestamp, headers.nonce, body, headers.signature)), None)
        if creds is None:
            raise Unauthenticated("the notification's signature does not verify", reason=BAD_SIGNATURE)
        if not notification_fresh(headers.timestamp, self._now()):
            raise Unauthenticated("the notification is too old (or from the future)", reason=STALE)
        return creds

    async def _refund_notified(self, merchant_id: str, creds: WechatCredentials, headers: NotificationHeaders,
                               body: str, now: datetime) -> tuple[Payment, bool]:
        """A REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED notification: verified like a
        payment's, then the refund's provider status moves on (once)."""
        result = self.wechat.open_refund_notification(creds, body)
        if result is None:
            raise Unauthenticated("the notification's resource does not decrypt", reason=UNREADABLE)
        if not await self.seen.remember(merchant_id, f"{headers.timestamp}:{headers.nonce}", now):
            raise Unauthenticated("the notification was delivered already", reason=REPLAYED)
        refund = await self.refunds.get(merchant_id, result.out_refund_no) \
            if self.refunds is not None and is_id(result.out_refund_no, "rfd") else None
        if refund is None:
            # A payment sent back whole (its refund id is auto_refund_id) keeps no refund
            # record: its notification is taken, so that WeChat stops sending it.
            sent_back = result.out_refund_no.removesuffix(auto_refund_id(""))
            payment = await self.payments.get(merchant_id, sent_back) if is_id(sent_back, "pay") else None
            if payment is None or auto_refund_id(payment.id) != result.out_refund_no:
                raise NotFound(f"refund {result.out_refund_no} not found")
            log.info("payment.sent_back_notified", payment_id=payment.id, status=result.status.value)
            if result.status is ProviderStatus.ABNORMAL:
                log.error("refund.provider_abnormal", payment_id=payment.id, merchant_id=merchant_id,
                          provider_refund_id=result.refund_id, amount=payment.amount)
            return payment, False
        payment = await self._payment_of(refund)
        if result.mch_id and result.mch_id != creds.mch_id:
            v = Violations()
            v.add("mchid", "not the merchant's WeChat Pay merchant id")
            raise InvalidArgument("WeChat's statement does not match the refund", reason=MISMATCH,
                                  violations=v.items)
        log.info("refund.notified", refund_id=refund.id, status=result.status.value)
        return payment, await self._provider_says(refund, result)

    async def _payment_of(self, refund: Refund) -> Payment:
        found = [p for p in await self.payments.of_order(refund.merchant_id, refund.order_id)
                 if p.method is PaymentMethod.WECHAT and p.provider_txn_id]
        if not found:
            raise NotFound(f"no WeChat payment for refund {refund.id}")
        return found[0]

    async def _provider_says(self, refund: Refund, result: RefundResult) -> bool:
        """Moves the refund's provider status on, once: of concurrent writers (a query job
        in another process, a notification) the version check lets one through; the
        others read it again and find nothing left to do."""
        for _ in range(3):
            if not refund.provider_says(result.status):
                return False
            try:
                await self.refunds.save(refund)
            except StaleVersion:
                refund = await self.refunds.get(refund.merchant_id, refund.id)
                if refund is None:
                    return False
                continue
            if result.status is ProviderStatus.ABNORMAL:
                # The payer's account could not take the money: staff must act (WeChat's
                # merchant platform, or another refund route).
                log.error("refund.provider_abnormal", refund_id=refund.id, merchant_id=refund.merchant_id,
                          provider_refund_id=result.refund_id or refund.provider_refund_id, amount=refund.amount)
            else:
                log.info("refund.provider_status", refund_id=refund.id, status=result.status.value)
            return True
        return False

    async def query_refunds_due(self, limit: int = QUERY_BATCH) -> int:
        """The job: refunds WeChat answered PROCESSING are asked about (GET
        /v3/refund/domestic/refunds/{out_refund_no}) when their time comes; replicas take
        each one by a compare-and-set on its next query time first, so three processes
        running it ask about a refund once."""
        if self.refunds is None:
            return 0
        now = self._now()
        moved = 0
        for refund in await self.refunds.provider_query_due(epoch_ms(now), limit):
            seen = refund.queried(now, self.query_after)
            if not await self.refunds.take_for_provider_query(refund, seen):
                continue  # another run took it
            try:
                payment = await self._payment_of(refund)
                creds = await self._credentials(payment.merchant_id, payment.channel)
                result = await self.wechat.query_refund(creds, refund.id)
                if result is None or result.status is ProviderStatus.PROCESSING:
                    continue
                moved += await self._provider_says(refund, result)
            except Exception:  # noqa: BLE001 - one refund failing must not hold up the others
                log.warning("refund.query_failed", refund_id=refund.id, exc_info=True)
        if moved:
            log.info("refund.confirmed_by_query", count=moved)
        return moved

    @staticmethod
    def _check(payment: Payment, trade: TradeResult, creds: WechatCredentials) -> None:
        problems = trade_mismatch(payment, trade, creds)
        if problems:
            v = Violations()
            for name, description in problems:
                v.add(name, description)
            raise InvalidArgument("WeChat's statement does not match the payment", reason=MISMATCH,
                                  violations=v.items)

    async def _apply(self, payment: Payment, trade: TradeResult) -> tuple[Payment, bool]:
        if trade.trade_state == TRADE_SUCCESS:
            return await self.base.succeeded(payment, trade.transaction_id)
        if trade.trade_state in TRADE_FINAL_FAILURES:
            return await self.base.failed(payment, trade.transaction_id or f"{trade.trade_state}:{payment.id}")
        return payment, False  # NOTPAY, USERPAYING: nothing to do yet

    # ---- the job ----------------------------------------------------------------------

    async def query_due(self, limit: int = QUERY_BATCH) -> int:
        """The job: WeChat payments still PENDING a while after they started (the
        notification never came) are asked about; a SUCCESS answer pays the order like a
        notification. Replicas take each payment by a compare-and-set first."""
        now = self._now()
        done = 0
        for payment in await self.payments.query_due(epoch_ms(now), limit):
            seen = payment.queried(now)
            if not await self.payments.take_for_query(payment, seen):
                continue  # another run took it
            try:
                creds = await self._credentials(payment.merchant_id, payment.channel)
                trade = await self.wechat.query(creds, payment.id)
                if trade is None:
                    continue
                self._check(payment, trade, creds)
                _, applied = await self._apply(payment, trade)
                done += applied
            except Exception:  # noqa: BLE001 - one payment failing must not hold up the others
                log.warning("payment.query_failed", payment_id=payment.id, exc_info=True)
        if done:
            log.info("payment.confirmed_by_query", count=done)
        return done

    # ---- staff: credentials -----------------------------------------------------------

    async def set_credentials(self, cmd: CredentialsInput) -> WechatCredentials:
        """Sets or rotates the channel's credentials (OWNER only)."""
        ctx = context.current()
        ctx.require_staff("OWNER")
        v = Violations()
        v.check(cmd.channel in CHANNELS, "channel", f"one of {', '.join(CHANNELS)}")
        v.check(_plain(cmd.app_id, 32), "app_id", "required, up to 32 letters and digits")
        v.check(_plain(cmd.mch_id, 32), "mch_id", "required, up to 32 letters and digits")
        v.check(len(cmd.api_v3_key.encode()) == 32, "api_v3_key", "must be 32 bytes")
        v.check(_plain(cmd.serial_no, 64), "serial_no", "required, up to 64 letters and digits")
        v.check(1 <= len(cmd.platform_public_key_id) <= 64, "platform_public_key_id", "required, 1..64 characters")
        v.raise_if_any()
        for name, description in self.key_problems(cmd):
            v.add(name, description)
        v.raise_if_any()
        creds = WechatCredentials(
            merchant_id=ctx.merchant_id, channel=cmd.channel, app_id=cmd.app_id, mch_id=cmd.mch_id,
            serial_no=cmd.serial_no, platform_public_key_id=cmd.platform_public_key_id, api_v3_key=cmd.api_v3_key,
            private_key_pem=cmd.private_key_pem, platform_public_key_pem=cmd.platform_public_key_pem,
            updated_at=self._now(), updated_by=ctx.caller_id)
        await self.credentials.put(creds)
        log.info("wechat_pay.credentials_set", channel=cmd.channel, app_id=cmd.app_id, mch_id=cmd.mch_id,
                 serial_no=cmd.serial_no, by=ctx.caller_id)
        return creds

    async def list_credentials(self) -> list[WechatCredentials]:
        """The merchant's credentials; the servicer returns only what is not secret."""
        ctx = context.current()
        ctx.require_staff("OWNER", "FINANCE")
        return await self.credentials.of_merchant(ctx.merchant_id)


def _plain(value: str, limit: int) -> bool:
    return 1 <= len(value) <= limit and value.isascii() and value.isalnum()

