"""The provider ports of the money that goes out (application/provider_ports.py): WeChat Pay
for a merchant that set up WeChat Pay credentials, the sandbox provider for one that did not,
chosen per merchant as payments are.

- Transfers: WeChat's 商家转账 keyed by the transfer id (out_bill_no); the sandbox's succeed,
  keyed the same way (services/order/adapters/sandbox_ledger.py).
- ProfitSharing: WeChat's 分账 keyed by the split id (out_order_no); the sandbox's finish,
  keyed the same way.
  A sandbox transaction (sbx_txn_…) is always the sandbox's, whoever the merchant is.
- ProviderStatements: WeChat's trade bill of every mch_id the merchant uses, plus the sandbox's
  statement, which is built from our own sandbox payments and refunds (so a sandbox merchant's
  reconciliation always matches).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Sequence

from siyu_kit import db
from siyu_kit.db import run_sync
from siyu_kit.errors import FailedPrecondition
from siyu_kit.ids import new_id
from siyu_kit.protos import aware, utcnow

from services.order.adapters.documents import PaymentDoc
from services.order.adapters.refunds import RefundDoc
from services.order.adapters.sandbox_ledger import SHARES, TRANSFERS, SandboxLedger
from services.order.adapters.wechat_funds import WechatFundsApi
from services.order.adapters.wechat_pay import NOT_CONFIGURED
from services.order.application.ports import WechatCredentialRepository
from services.order.application.provider_ports import (ShareRequest, ShareResult, ShareReturnRequest,
                                                       ShareReturnResult, StatementRow, TransferRequest,
                                                       TransferResult)
from services.order.application.payments import auto_refund_id
from services.order.domain.payments import PaymentMethod, WechatCredentials

_CN = timezone(timedelta(hours=8))
SANDBOX_TXN_PREFIX = "sbx_txn_"
SANDBOX_REFUND_PREFIX = "sbxrf_"
# WeChat's transfer bill states → ours; any other (ACCEPTED, PROCESSING, WAIT_USER_CONFIRM,
# TRANSFERING) is still on its way.
TRANSFER_STATES = {"SUCCESS": "SUCCEEDED", "FAIL": "FAILED", "CANCELLED": "FAILED"}


def transfer_result_of(bill: dict) -> TransferResult:
    state = str(bill.get("state") or "")
    mapped = TRANSFER_STATES.get(state, "PROCESSING")
    reason = str(bill.get("fail_reason") or ("CANCELLED" if state == "CANCELLED" else "")) \
        if mapped == "FAILED" else ""
    return TransferResult(state=mapped, provider_transfer_id=str(bill.get("transfer_bill_no") or ""),
                          failure_reason=reason)


def share_result_of(order: dict) -> ShareResult:
    receivers = {str(r.get("account") or ""): str(r.get("result") or "PENDING")
                 for r in order.get("receivers") or [] if isinstance(r, dict)}
    return ShareResult(state="FINISHED" if order.get("state") == "FINISHED" else "PROCESSING",
                       provider_order_id=str(order.get("order_id") or ""), receivers=receivers)


def _distinct_mch(creds: list[WechatCredentials]) -> list[WechatCredentials]:
    seen, picked = set(), []
    for c in creds:
        if c.mch_id not in seen:
            seen.add(c.mch_id)
            picked.append(c)
    return picked


# ---- WeChat Pay ---------------------------------------------------------------------------

class WechatTransfers:
    def __init__(self, credentials: WechatCredentialRepository, api: WechatFundsApi):
        self.credentials = credentials
        self.api = api

    async def transfer(self, request: TransferRequest) -> TransferResult:
        creds = await self.credentials.get(request.merchant_id, request.channel)
        if creds is None:
            raise FailedPrecondition(f"WeChat Pay is not set up for channel {request.channel}",
                                     reason=NOT_CONFIGURED)
        return transfer_result_of(await self.api.transfer(creds, request.transfer_id, request.openid,
                                                          request.amount, request.remark))

    async def query(self, merchant_id: str, transfer_id: str) -> TransferResult | None:
        for creds in _distinct_mch(await self.credentials.of_merchant(merchant_id)):
            bill = await self.api.query_transfer(creds, transfer_id)
            if bill is not None:
                return transfer_result_of(bill)
        return None


class WechatProfitSharing:
    """分账 with the merchant's (first) WeChat Pay account: one mch_id takes its payments."""

    def __init__(self, credentials: WechatCredentialRepository, api: WechatFundsApi):
        self.credentials = credentials
        self.api = api

    async def _creds(self, merchant_id: str) -> WechatCredentials:
        found = await self.credentials.of_merchant(merchant_id)
        if not found:
            raise FailedPrecondition("WeChat Pay is not set up", reason=NOT_CONFIGURED)
        return found[0]

    async def share(self, request: ShareRequest) -> ShareResult:
        creds = await self._creds(request.merchant_id)
        return share_result_of(await self.api.share(creds, {
            "transaction_id": request.provider_txn_id, "out_order_no": request.split_id,
            "receivers": [{"type": r.kind, "account": r.account, "amount": r.amount,
                           "description": r.description[:80]} for r in request.receivers],
            "unfreeze_unsplit": request.unfreeze_rest}))

    async def return_share(self, request: ShareReturnRequest) -> ShareReturnResult:
        creds = await self._creds(request.merchant_id)
        made = await self.api.return_share(creds, {
            "out_order_no": request.split_id, "out_return_no": request.return_id, "return_mchid": request.account,
            "amount": request.amount, "description": request.description[:80]})
        result = str(made.get("result") or "PROCESSING")
        return ShareReturnResult(state=result if result in ("SUCCESS", "FAILED") else "PROCESSING",
                                 failure_reason=str(made.get("fail_reason") or ""))

    async def unfreeze(self, merchant_id: str, provider_txn_id: str, split_id: str) -> ShareResult:
        creds = await self._creds(merchant_id)
        # WeChat takes every sharing instruction of a transaction under its own out_order_no.
        return share_result_of(await self.api.unfreeze(creds, {
            "transaction_id": provider_txn_id, "out_order_no": f"{split_id}-unfreeze",
            "description": "解冻全部剩余资金"}))


class WechatStatements:
    def __init__(self, credentials: WechatCredentialRepository, api: WechatFundsApi):
        self.credentials = credentials
        self.api = api

    async def statement(self, merchant_id: str, day: date) -> Sequence[StatementRow]:
        rows: list[StatementRow] = []
        for creds in _distinct_mch(await self.credentials.of_merchant(merchant_id)):
            rows += await self.api.trade_bill(creds, day)
        return rows


# ---- the sandbox provider -----------------------------------------------------------------

class SandboxTransfers:
    """The sandbox pays out at once, nothing moving, and keys each transfer by its transfer id
    as WeChat keys out_bill_no: the same id answers the transfer made; another member or
    amount under it is refused (PROVIDER_KEY_REUSED)."""

    def __init__(self, ledger: SandboxLedger | None = None):
        self.ledger = ledger or SandboxLedger(db.database)

    async def transfer(self, request: TransferRequest) -> TransferResult:
        made = await self.ledger.keyed(
            TRANSFERS, request.transfer_id,
            {"merchant_id": request.merchant_id, "member_id": request.member_id, "amount": request.amount},
            lambda: {"provider_transfer_id": new_id("sbxtr")}, utcnow())
        return TransferResult(state="SUCCEEDED", provider_transfer_id=made["provider_transfer_id"])

    async def query(self, merchant_id: str, transfer_id: str) -> TransferResult | None:
        made = await self.ledger.find(TRANSFERS, transfer_id)
        if made is None or made.get("merchant_id") != merchant_id:
            return None
        return TransferResult(state="SUCCEEDED", provider_transfer_id=made["provider_transfer_id"])


class SandboxProfitSharing:
    """The sandbox's sharing orders finish at once and are keyed by the split id (its
    unfreezing by `<split id>-unfreeze`, as WeChat's own order), each return by its return
    id: a repeat answers the first; other receivers or amounts are refused."""

    def __init__(self, ledger: SandboxLedger | None = None):
        self.ledger = ledger or SandboxLedger(db.database)

    async def share(self, request: ShareRequest) -> ShareResult:
        made = await self.ledger.keyed(
            SHARES, request.split_id,
            {"merchant_id": request.merchant_id, "provider_txn_id": request.provider_txn_id,
             "receivers": [{"kind": r.kind, "account": r.account, "amount": r.amount} for r in request.receivers]},
            lambda: {"provider_order_id": new_id("sbxps")}, utcnow())
        return ShareResult(state="FINISHED", provider_order_id=made["provider_order_id"],
                           receivers={r["account"]: "SUCCESS" for r in made["receivers"]})

    async def return_share(self, request: ShareReturnRequest) -> ShareReturnResult:
        await self.ledger.keyed(
            SHARES, f"{request.split_id}:{request.return_id}",
            {"merchant_id": request.merchant_id, "split_id": request.split_id, "account": request.account,
             "amount": request.amount}, lambda: {"provider_order_id": new_id("sbxpr")}, utcnow())
        return ShareReturnResult(state="SUCCESS")

    async def unfreeze(self, merchant_id: str, provider_txn_id: str, split_id: str) -> ShareResult:
        made = await self.ledger.keyed(
            SHARES, f"{split_id}-unfreeze", {"merchant_id": merchant_id, "provider_txn_id": provider_txn_id,
                                             "receivers": []},
            lambda: {"provider_order_id": new_id("sbxps")}, utcnow())
        return ShareResult(state="FINISHED", provider_order_id=made["provider_order_id"])


def cn_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The day in Asia/Shanghai as a UTC half-open range."""
    start = datetime.combine(day, time(), tzinfo=_CN).astimezone(timezone.utc)
    return start, start + timedelta(days=1)


class SandboxStatements:
    """The sandbox's statement of a day: our own sandbox payments (on the day they succeeded)
    and their refunds (on the day they were made), without a fee."""

    async def statement(self, merchant_id: str, day: date) -> Sequence[StatementRow]:
        start, end = cn_day_bounds(day)

        def read() -> list[StatementRow]:
            rows = []
            for p in PaymentDoc._get_collection().find(
                    {"merchant_id": merchant_id, "method": PaymentMethod.SANDBOX.value,
                     "succeeded_at": {"$gte": start, "$lt": end}}):
                rows.append(StatementRow(kind="PAYMENT", our_id=p["_id"], provider_id=p.get("provider_txn_id") or "",
                                         amount=p["amount"], fee=0, at=aware(p["succeeded_at"])))
            # A payment the order could not take went back whole.
            for p in PaymentDoc._get_collection().find(
                    {"merchant_id": merchant_id, "method": PaymentMethod.SANDBOX.value,
                     "refunded_at": {"$gte": start, "$lt": end}}):
                refund = p.get("refund") or {}
                if refund.get("amount"):  # nothing went to the provider for a payment of 0
                    rows.append(StatementRow(kind="REFUND", our_id=auto_refund_id(p["_id"]),
                                             provider_id=refund.get("provider_refund_id") or "",
                                             amount=refund["amount"], fee=0, at=aware(p["refunded_at"])))
            for r in RefundDoc._get_collection().find(
                    {"merchant_id": merchant_id, "refunded_at": {"$gte": start, "$lt": end}}):
                if str(r.get("provider_refund_id") or "").startswith(SANDBOX_REFUND_PREFIX):
                    rows.append(StatementRow(kind="REFUND", our_id=r["_id"], provider_id=r["provider_refund_id"],
                                             amount=r["amount"], fee=0, at=aware(r["refunded_at"])))
            return sorted(rows, key=lambda row: row.at)
        return await run_sync(read)


# ---- chosen per merchant ----------------------------------------------------------------

class MerchantTransfers:
    """A merchant with WeChat Pay credentials pays out through WeChat (to the member's openid
    on the channel, which the channel must have credentials for); one without, the sandbox."""

    def __init__(self, credentials: WechatCredentialRepository, wechat: WechatTransfers, sandbox: SandboxTransfers):
        self.credentials = credentials
        self.wechat = wechat
        self.sandbox = sandbox

    async def needs_openid(self, merchant_id: str, channel: str) -> bool:
        return bool(await self.credentials.of_merchant(merchant_id))

    async def transfer(self, request: TransferRequest) -> TransferResult:
        provider = self.wechat if await self.needs_openid(request.merchant_id, request.channel) else self.sandbox
        return await provider.transfer(request)

    async def query(self, merchant_id: str, transfer_id: str) -> TransferResult | None:
        provider = self.wechat if await self.needs_openid(merchant_id, "") else self.sandbox
        return await provider.query(merchant_id, transfer_id)


class MerchantProfitSharing:
    def __init__(self, credentials: WechatCredentialRepository, wechat: WechatProfitSharing,
                 sandbox: SandboxProfitSharing):
        self.credentials = credentials
        self.wechat = wechat
        self.sandbox = sandbox

    async def _wechat(self, merchant_id: str, provider_txn_id: str = "") -> bool:
        if provider_txn_id.startswith(SANDBOX_TXN_PREFIX):
            return False
        return bool(await self.credentials.of_merchant(merchant_id))

    async def share(self, request: ShareRequest) -> ShareResult:
        provider = self.wechat if await self._wechat(request.merchant_id, request.provider_txn_id) else self.sandbox
        return await provider.share(request)

    async def return_share(self, request: ShareReturnRequest) -> ShareReturnResult:
        provider = self.wechat if await self._wechat(request.merchant_id) else self.sandbox
        return await provider.return_share(request)

    async def unfreeze(self, merchant_id: str, provider_txn_id: str, split_id: str) -> ShareResult:
        provider = self.wechat if await self._wechat(merchant_id, provider_txn_id) else self.sandbox
        return await provider.unfreeze(merchant_id, provider_txn_id, split_id)


class MerchantStatements:
    """Every provider the merchant used: WeChat's bills (if it has WeChat Pay) and the
    sandbox's statement."""

    def __init__(self, credentials: WechatCredentialRepository, wechat: WechatStatements,
                 sandbox: SandboxStatements):
        self.credentials = credentials
        self.wechat = wechat
        self.sandbox = sandbox

    async def statement(self, merchant_id: str, day: date) -> Sequence[StatementRow]:
        rows = list(await self.sandbox.statement(merchant_id, day))
        if await self.credentials.of_merchant(merchant_id):
            rows += await self.wechat.statement(merchant_id, day)
        return sorted(rows, key=lambda row: row.at)


def transfers(credentials: WechatCredentialRepository, api: WechatFundsApi,
              sandbox: SandboxLedger | None = None) -> MerchantTransfers:
    return MerchantTransfers(credentials, WechatTransfers(credentials, api), SandboxTransfers(sandbox))


def profit_sharing(credentials: WechatCredentialRepository, api: WechatFundsApi,
                   sandbox: SandboxLedger | None = None) -> MerchantProfitSharing:
    return MerchantProfitSharing(credentials, WechatProfitSharing(credentials, api), SandboxProfitSharing(sandbox))


def provider_statements(credentials: WechatCredentialRepository, api: WechatFundsApi) -> MerchantStatements:
    return MerchantStatements(credentials, WechatStatements(credentials, api), SandboxStatements())
