"""WeChat Pay API v3's money-out and statement endpoints of the stand-in, at
api.mch.weixin.qq.com's paths, signed and verified like the pay endpoints (wechat_standin.pay):

- POST /v3/fund-app/mch-transfer/transfer-bills             商家转账: a transfer bill, keyed by
                                                              out_bill_no (the same body answers
                                                              the same bill; another amount,
                                                              openid or scene is refused)
- GET  /v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}
- POST /v3/profitsharing/orders                              分账, keyed by out_order_no (another
                                                              transaction or other receivers under
                                                              it: INVALID_REQUEST); refused past the
                                                              transaction's maximum share
- GET  /v3/profitsharing/orders/{out_order_no}?transaction_id=
- POST /v3/profitsharing/return-orders                       分账回退, keyed by out_return_no (another
                                                              amount under it: INVALID_REQUEST)
- GET  /v3/profitsharing/return-orders/{out_return_no}?out_order_no=
- POST /v3/profitsharing/orders/unfreeze                     what is still frozen goes to the merchant
- GET  /v3/bill/tradebill?bill_date=&bill_type=ALL           the day's trade bill: its download_url
                                                              and SHA1
- GET  /v3/billdownload/file?token=                          the bill itself (CSV, unsigned, as
                                                              WeChat sends it)

The trade bill is built from the payments and refunds the pay module recorded: a payment on
the day (Asia/Shanghai) of its success, a refund on the day it was accepted; the fee is the
merchant's rate (0.6% unless a test sets another), rounded half up to the fen.

Test controls (under /_standin/funds/):
- POST /transfers/fail-next {mchid, reason?}: the merchant's next new transfer bill FAILs
  with the reason (default ACCOUNT_FROZEN).
- POST /transfers/{out_bill_no}/settle {state: SUCCESS|FAIL|CANCELLED, fail_reason?}
- GET  /transfers?mchid=: the merchant's bills and how many transfer requests came.
- POST /profitsharing/settings {mchid, max_ratio_bp?, finish_at_once?}: the maximum share of a
  transaction (3000 = 30% by default) and whether new sharing orders FINISH at once (else they
  stay PROCESSING until finished by the control below).
- POST /profitsharing/{out_order_no}/finish {result: SUCCESS|CLOSED, fail_reason?}
- GET  /profitsharing?mchid=: the merchant's sharing orders and returns.
- POST /bills/fee-rate {mchid, rate_bp}: the fee rate of the merchant's bills.
- POST /bills/discrepancy {mchid, bill_date, kind: DROP|AMOUNT|EXTRA, out_no?, amount?}: the
  day's bill leaves out a row, states another amount for it, or carries a row the merchant never
  made (several may be set).
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wechat_standin.pay import KEY_REUSED_MESSAGE, Merchant, PayState, _authorize, _body, _now_text, _pay

_CN = timezone(timedelta(hours=8))
# 商户单号 of a transfer: letters and digits only, 5 to 32 characters.
_BILL_NO = re.compile(r"^[A-Za-z0-9]{5,32}$")
_SHARE_NO = re.compile(r"^[A-Za-z0-9_\-|*@]{1,64}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DEFAULT_MAX_RATIO_BP = 3000
DEFAULT_FEE_RATE_BP = 60
TRANSFER_STATES = ("ACCEPTED", "PROCESSING", "WAIT_USER_CONFIRM", "TRANSFERING", "SUCCESS", "FAIL", "CANCELLED")
BILL_HEADER = ("交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,"
               "付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
               "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注")
SUMMARY_HEADER = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"


def fee_of(amount: int, rate_bp: int) -> int:
    """The fee in fen of an amount in fen at rate_bp, rounded half up."""
    return (amount * rate_bp + 5000) // 10000


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _cn_day(text: str) -> str:
    """The Asia/Shanghai date of an RFC 3339 time WeChat wrote."""
    return datetime.fromisoformat(text).astimezone(_CN).date().isoformat()


def _bill_time(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(_CN).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Discrepancy:
    kind: str  # DROP, AMOUNT or EXTRA
    out_no: str = ""
    amount: int = 0


@dataclass
class FundsState:
    bills: dict[tuple[str, str], dict] = field(default_factory=dict)
    transfer_requests: int = 0
    fail_next: dict[str, str] = field(default_factory=dict)
    shares: dict[tuple[str, str], dict] = field(default_factory=dict)
    returns: dict[tuple[str, str], dict] = field(default_factory=dict)
    unfrozen: set[tuple[str, str]] = field(default_factory=set)
    max_ratio_bp: dict[str, int] = field(default_factory=dict)
    finish_at_once: dict[str, bool] = field(default_factory=dict)
    fee_rate_bp: dict[str, int] = field(default_factory=dict)
    discrepancies: dict[tuple[str, str], list[Discrepancy]] = field(default_factory=dict)
    # download token → (mchid, CSV text)
    downloads: dict[str, tuple[str, str]] = field(default_factory=dict)


def _funds(request: Request) -> FundsState:
    return request.app.state.standin_funds

async def _signed_json(request: Request) -> tuple[PayState, FundsState, Merchant, dict] | Response:
    """A signed call with a JSON object body: (pay state, funds state, merchant, body), or
    the refusal WeChat answers (a bad signature, or a body that is not an object)."""
    pay, funds = _pay(request), _funds(request)
    raw, data = await _body(request)
    merchant, refused = _authorize(request, pay, raw)
    if refused:
        return refused
    if data is None:
        return pay.fail(400, "PARAM_ERROR", "the body is not a JSON object")
    return pay, funds, merchant, data



# ---- 商家转账 ------------------------------------------------------------------------------

def _bill_answer(bill: dict) -> dict:
    answer = {k: bill[k] for k in ("out_bill_no", "transfer_bill_no", "create_time", "state")}
    if bill["state"] == "WAIT_USER_CONFIRM":
        answer["package_info"] = bill["package_info"]
    if bill["state"] == "FAIL":
        answer["fail_reason"] = bill["fail_reason"]
    return answer


async def transfer(request: Request) -> Response:
    signed = await _signed_json(request)
    if isinstance(signed, Response):
        return signed
    pay, funds, merchant, data = signed
    problems = [name for name, ok in (
        ("appid", data.get("appid") == merchant.appid),
        ("out_bill_no", isinstance(data.get("out_bill_no"), str) and bool(_BILL_NO.match(data["out_bill_no"]))),
        ("transfer_scene_id", isinstance(data.get("transfer_scene_id"), str) and bool(data["transfer_scene_id"])),
        ("openid", isinstance(data.get("openid"), str) and 0 < len(data["openid"]) <= 64),
        ("transfer_amount", isinstance(data.get("transfer_amount"), int) and data["transfer_amount"] > 0),
        ("transfer_remark", isinstance(data.get("transfer_remark"), str) and 0 < len(data["transfer_remark"]) <= 32))
        if not ok]
    if problems:
        return pay.fail(400, "PARAM_ERROR", f"invalid {problems[0]}")
    funds.transfer_requests += 1
    key = (merchant.mchid, data["out_bill_no"])
    bill = funds.bills.get(key)
    if bill is not None:
        if (bill["transfer_amount"], bill["openid"], bill["transfer_scene_id"], bill["appid"]) != (
                data["transfer_amount"], data["openid"], data["transfer_scene_id"], data["appid"]):
            return pay.fail(400, "INVALID_REQUEST", "商户单号重复,请求参数与原单据不一致")
        return pay.signed(_bill_answer(bill))
    now = _now_text()
    bill = {"mch_id": merchant.mchid, "out_bill_no": data["out_bill_no"],
            "transfer_bill_no": "1330000" + secrets.token_hex(12), "appid": data["appid"],
            "state": "WAIT_USER_CONFIRM", "transfer_amount": data["transfer_amount"],
            "transfer_remark": data["transfer_remark"], "transfer_scene_id": data["transfer_scene_id"],
            "openid": data["openid"], "create_time": now, "update_time": now, "fail_reason": "",
            "package_info": "ABBQO+oYAAABAAAAAAB" + secrets.token_urlsafe(24)}
    reason = funds.fail_next.pop(merchant.mchid, None)
    if reason is not None:
        bill.update(state="FAIL", fail_reason=reason)
    funds.bills[key] = bill
    return pay.signed(_bill_answer(bill))


def _bill_detail(bill: dict) -> dict:
    detail = {k: bill[k] for k in ("mch_id", "out_bill_no", "transfer_bill_no", "appid", "state",
                                   "transfer_amount", "transfer_remark", "openid", "create_time", "update_time")}
    if bill["state"] == "FAIL":
        detail["fail_reason"] = bill["fail_reason"]
    return detail


async def query_transfer(request: Request) -> Response:
    pay, funds = _pay(request), _funds(request)
    merchant, refused = _authorize(request, pay, "")
    if refused:
        return refused
    bill = funds.bills.get((merchant.mchid, request.path_params["out_bill_no"]))
    if bill is None:
        return pay.fail(404, "NOT_FOUND", "记录不存在")
    return pay.signed(_bill_detail(bill))


# ---- 分账 ---------------------------------------------------------------------------------

def _trade_by_txn(pay: PayState, mchid: str, transaction_id: str):
    return next((t for t in pay.trades.values()
                 if t.mchid == mchid and t.transaction_id and t.transaction_id == transaction_id), None)


def _shared_so_far(funds: FundsState, mchid: str, transaction_id: str) -> int:
    return sum(r["amount"] for (m, _), order in funds.shares.items()
               if m == mchid and order["transaction_id"] == transaction_id
               for r in order["receivers"] if r["type"] != "MERCHANT_ID" or r["account"] != mchid)


def _finish(order: dict, result: str = "SUCCESS", fail_reason: str = "") -> None:
    order["state"] = "FINISHED"
    for r in order["receivers"]:
        if r["result"] == "PENDING":
            r["result"] = result
            r["finish_time"] = _now_text()
            if result == "CLOSED":
                r["fail_reason"] = fail_reason or "ACCOUNT_ABNORMAL"


def _share_answer(order: dict) -> dict:
    return {k: order[k] for k in ("transaction_id", "out_order_no", "order_id", "state", "receivers")}


async def share(request: Request) -> Response:
    signed = await _signed_json(request)
    if isinstance(signed, Response):
        return signed
    pay, funds, merchant, data = signed
    receivers = data.get("receivers")
    ok_receivers = isinstance(receivers, list) and 0 < len(receivers) <= 50 and all(
        isinstance(r, dict) and r.get("type") in ("MERCHANT_ID", "PERSONAL_OPENID")
        and isinstance(r.get("account"), str) and r["account"] and isinstance(r.get("amount"), int)
        and r["amount"] > 0 and isinstance(r.get("description"), str) and 0 < len(r["description"]) <= 80
        for r in receivers)
    problems = [name for name, ok in (
        ("transaction_id", isinstance(data.get("transaction_id"), str) and bool(data["transaction_id"])),
        ("out_order_no", isinstance(data.get("out_order_no"), str) and bool(_SHARE_NO.match(data["out_order_no"]))),
        ("receivers", ok_receivers),
        ("unfreeze_unsplit", isinstance(data.get("unfreeze_unsplit"), bool))) if not ok]
    if problems:
        return pay.fail(400, "PARAM_ERROR", f"invalid {problems[0]}")
    key = (merchant.mchid, data["out_order_no"])
    order = funds.shares.get(key)
    if order is not None:
        # The same out_order_no is the same request: WeChat answers the order it made, and
        # refuses the number asked again for another transaction or other receivers.
        asked = [(r["type"], r["account"], r["amount"]) for r in receivers]
        if order["transaction_id"] != data["transaction_id"] or asked != [
                (r["type"], r["account"], r["amount"]) for r in order["receivers"]]:
            return pay.fail(400, "INVALID_REQUEST", KEY_REUSED_MESSAGE)
        return pay.signed(_share_answer(order))
    trade = _trade_by_txn(pay, merchant.mchid, data["transaction_id"])
    if trade is None or trade.state != "SUCCESS":
        return pay.fail(400, "INVALID_REQUEST", "订单不存在或未支付")
    if (merchant.mchid, trade.transaction_id) in funds.unfrozen:
        return pay.fail(403, "INVALID_REQUEST", "订单已完结分账,剩余资金已解冻")
    refunded = sum(r["amount"]["refund"] for r in trade.refunds)
    ratio = funds.max_ratio_bp.get(merchant.mchid, DEFAULT_MAX_RATIO_BP)
    wanted = sum(r["amount"] for r in receivers)
    if _shared_so_far(funds, merchant.mchid, trade.transaction_id) + wanted > (trade.total - refunded) * ratio // 10000:
        return pay.fail(403, "RULE_LIMIT", "分账金额超出最大分账比例")
    now = _now_text()
    order = {"mchid": merchant.mchid, "transaction_id": trade.transaction_id, "out_order_no": data["out_order_no"],
             "order_id": "3008450740201411110007820472" + secrets.token_hex(2), "state": "PROCESSING",
             "receivers": [{"type": r["type"], "account": r["account"], "amount": r["amount"],
                            "description": r["description"], "result": "PENDING", "create_time": now,
                            "detail_id": "36011111111111111111111" + secrets.token_hex(4)} for r in receivers],
             "unfreeze_unsplit": data["unfreeze_unsplit"]}
    if funds.finish_at_once.get(merchant.mchid):
        _finish(order)
    if data["unfreeze_unsplit"]:
        funds.unfrozen.add((merchant.mchid, trade.transaction_id))
    funds.shares[key] = order
    return pay.signed(_share_answer(order))


async def query_share(request: Request) -> Response:
    pay, funds = _pay(request), _funds(request)
    merchant, refused = _authorize(request, pay, "")
    if refused:
        return refused
    order = funds.shares.get((merchant.mchid, request.path_params["out_order_no"]))
    if order is None or order["transaction_id"] != request.query_params.get("transaction_id"):
        return pay.fail(404, "RESOURCE_NOT_EXISTS", "记录不存在")
    return pay.signed(_share_answer(order))


async def unfreeze(request: Request) -> Response:
    signed = await _signed_json(request)
    if isinstance(signed, Response):
        return signed
    pay, funds, merchant, data = signed
    if not isinstance(data.get("out_order_no"), str) or not _SHARE_NO.match(data["out_order_no"]) \
            or not isinstance(data.get("description"), str) or not data["description"]:
        return pay.fail(400, "PARAM_ERROR", "invalid out_order_no or description")
    key = (merchant.mchid, data["out_order_no"])
    if key in funds.shares:
        if funds.shares[key]["transaction_id"] != data.get("transaction_id"):
            return pay.fail(400, "INVALID_REQUEST", KEY_REUSED_MESSAGE)
        return pay.signed(_share_answer(funds.shares[key]))
    trade = _trade_by_txn(pay, merchant.mchid, str(data.get("transaction_id") or ""))
    if trade is None or trade.state != "SUCCESS":
        return pay.fail(400, "INVALID_REQUEST", "订单不存在或未支付")
    refunded = sum(r["amount"]["refund"] for r in trade.refunds)
    rest = trade.total - refunded - _shared_so_far(funds, merchant.mchid, trade.transaction_id)
    funds.unfrozen.add((merchant.mchid, trade.transaction_id))
    now = _now_text()
    order = {"mchid": merchant.mchid, "transaction_id": trade.transaction_id, "out_order_no": data["out_order_no"],
             "order_id": "3008450740201411110007820472" + secrets.token_hex(2), "state": "FINISHED",
             "receivers": [{"type": "MERCHANT_ID", "account": merchant.mchid, "amount": max(rest, 0),
                            "description": "解冻给分账方", "result": "SUCCESS", "create_time": now, "finish_time": now,
                            "detail_id": "36011111111111111111111" + secrets.token_hex(4)}],
             "unfreeze_unsplit": True}
    funds.shares[key] = order
    return pay.signed(_share_answer(order))


async def return_share(request: Request) -> Response:
    signed = await _signed_json(request)
    if isinstance(signed, Response):
        return signed
    pay, funds, merchant, data = signed
    problems = [name for name, ok in (
        ("out_order_no", isinstance(data.get("out_order_no"), str) and bool(data["out_order_no"])),
        ("out_return_no", isinstance(data.get("out_return_no"), str) and bool(_SHARE_NO.match(data["out_return_no"]))),
        ("return_mchid", isinstance(data.get("return_mchid"), str) and bool(data["return_mchid"])),
        ("amount", isinstance(data.get("amount"), int) and data["amount"] > 0),
        ("description", isinstance(data.get("description"), str) and bool(data["description"]))) if not ok]
    if problems:
        return pay.fail(400, "PARAM_ERROR", f"invalid {problems[0]}")
    key = (merchant.mchid, data["out_return_no"])
    if key in funds.returns:
        made = funds.returns[key]
        if (made["out_order_no"], made["return_mchid"], made["amount"]) != (
                data["out_order_no"], data["return_mchid"], data["amount"]):
            return pay.fail(400, "INVALID_REQUEST", KEY_REUSED_MESSAGE)
        return pay.signed(made)
    order = funds.shares.get((merchant.mchid, data["out_order_no"]))
    if order is None:
        return pay.fail(404, "RESOURCE_NOT_EXISTS", "分账单不存在")
    received = sum(r["amount"] for r in order["receivers"]
                   if r["account"] == data["return_mchid"] and r["result"] == "SUCCESS")
    returned = sum(r["amount"] for r in funds.returns.values()
                   if r["out_order_no"] == order["out_order_no"] and r["return_mchid"] == data["return_mchid"]
                   and r["mchid"] == merchant.mchid and r["result"] != "FAILED")
    if returned + data["amount"] > received:
        return pay.fail(400, "INVALID_REQUEST", "回退金额超过接收方已分得的金额")
    now = _now_text()
    made = {"mchid": merchant.mchid, "order_id": order["order_id"], "out_order_no": order["out_order_no"],
            "out_return_no": data["out_return_no"], "return_id": "3008450740201411110007820473" + secrets.token_hex(2),
            "return_mchid": data["return_mchid"], "amount": data["amount"], "description": data["description"],
            "result": "SUCCESS", "create_time": now, "finish_time": now}
    funds.returns[key] = made
    return pay.signed(made)


async def query_return(request: Request) -> Response:
    pay, funds = _pay(request), _funds(request)
    merchant, refused = _authorize(request, pay, "")
    if refused:
        return refused
    made = funds.returns.get((merchant.mchid, request.path_params["out_return_no"]))
    if made is None or made["out_order_no"] != request.query_params.get("out_order_no"):
        return pay.fail(404, "RESOURCE_NOT_EXISTS", "记录不存在")
    return pay.signed(made)


# ---- 账单 ---------------------------------------------------------------------------------

def bill_rows(pay: PayState, funds: FundsState, mchid: str, day: str) -> list[list[str]]:
    """The detail rows of the merchant's ALL trade bill of the day, discrepancies applied,
    without the backtick prefix."""
    rate = funds.fee_rate_bp.get(mchid, DEFAULT_FEE_RATE_BP)
    rate_text = f"{rate / 100:.2f}%"
    rows: list[tuple[str, list[str]]] = []
    for t in pay.trades.values():
        if t.mchid != mchid:
            continue
        if t.state == "SUCCESS" and _cn_day(t.success_time) == day:
            rows.append((t.out_trade_no, [
                _bill_time(t.success_time), t.appid, mchid, "0", "", t.transaction_id, t.out_trade_no, t.openid,
                "JSAPI", "SUCCESS", "OTHERS", "CNY", yuan(t.total), "0.00", "0", "0", "0.00", "0.00", "", "",
                t.description, "", yuan(fee_of(t.total, rate)), rate_text, yuan(t.total), "0.00", ""]))
        for r in t.refunds:
            if _cn_day(r["create_time"]) != day:
                continue
            amount = r["amount"]["refund"]
            rows.append((r["out_refund_no"], [
                _bill_time(r["create_time"]), t.appid, mchid, "0", "", t.transaction_id, t.out_trade_no, t.openid,
                "JSAPI", "REFUND", "OTHERS", "CNY", "0.00", "0.00", r["refund_id"], r["out_refund_no"],
                yuan(amount), "0.00", "ORIGINAL", r["status"], t.description, "", yuan(-fee_of(amount, rate)),
                rate_text, "0.00", yuan(amount), ""]))
    rows.sort(key=lambda item: item[1][0])
    for d in funds.discrepancies.get((mchid, day), []):
        target = next((i for i, (no, _) in enumerate(rows) if not d.out_no or no == d.out_no), None)
        if d.kind == "DROP" and target is not None:
            rows.pop(target)
        elif d.kind == "AMOUNT" and target is not None:
            row = rows[target][1]
            column = 16 if row[9] == "REFUND" else 12
            row[column] = yuan(d.amount)
            if row[9] != "REFUND":
                row[24] = yuan(d.amount)
        elif d.kind == "EXTRA":
            amount = d.amount or 100
            no = d.out_no or "UNKNOWN" + secrets.token_hex(8)
            rows.append((no, [
                f"{day} 12:00:00", "", mchid, "0", "", "42" + secrets.token_hex(13), no, "", "JSAPI", "SUCCESS",
                "OTHERS", "CNY", yuan(amount), "0.00", "0", "0", "0.00", "0.00", "", "", "", "",
                yuan(fee_of(amount, rate)), rate_text, yuan(amount), "0.00", ""]))
    return [row for _, row in rows]


def bill_csv(rows: list[list[str]]) -> str:
    def fen(text: str) -> int:
        whole, _, cents = text.lstrip("-").partition(".")
        value = int(whole) * 100 + int((cents + "00")[:2])
        return -value if text.startswith("-") else value

    payments = sum(fen(r[12]) for r in rows)
    refunds = sum(fen(r[16]) for r in rows)
    fees = sum(fen(r[22]) for r in rows)
    ordered = sum(fen(r[24]) for r in rows)
    asked = sum(fen(r[25]) for r in rows)
    lines = [BILL_HEADER, *(",".join("`" + v for v in row) for row in rows), SUMMARY_HEADER,
             ",".join("`" + v for v in (str(len(rows)), yuan(payments), yuan(refunds), "0.00", yuan(fees),
                                        yuan(ordered), yuan(asked)))]
    return "\r\n".join(lines) + "\r\n"


async def trade_bill(request: Request) -> Response:
    pay, funds = _pay(request), _funds(request)
    merchant, refused = _authorize(request, pay, "")
    if refused:
        return refused
    day = request.query_params.get("bill_date", "")
    bill_type = request.query_params.get("bill_type", "ALL")
    try:
        valid = bool(_DATE.match(day)) and date.fromisoformat(day) is not None
    except ValueError:
        valid = False
    if not valid or bill_type != "ALL":
        return pay.fail(400, "PARAM_ERROR", "bill_date must be yyyy-MM-DD and bill_type ALL")
    if date.fromisoformat(day) > datetime.now(_CN).date():
        return pay.fail(400, "INVALID_REQUEST", "账单日期不能晚于今天")
    rows = bill_rows(pay, funds, merchant.mchid, day)
    if not rows:
        return pay.fail(400, "NO_STATEMENT_EXIST", "账单文件不存在")
    text = bill_csv(rows)
    token = secrets.token_urlsafe(24)
    funds.downloads[token] = (merchant.mchid, text)
    return pay.signed({"download_url": f"{str(request.base_url).rstrip('/')}/v3/billdownload/file?token={token}",
                       "hash_type": "SHA1", "hash_value": hashlib.sha1(text.encode()).hexdigest()})


async def download(request: Request) -> Response:
    pay, funds = _pay(request), _funds(request)
    merchant, refused = _authorize(request, pay, "")
    if refused:
        return refused
    found = funds.downloads.get(request.query_params.get("token", ""))
    if found is None or found[0] != merchant.mchid:
        return pay.fail(404, "RESOURCE_NOT_EXISTS", "账单文件不存在")
    # The file is a stream, not a JSON answer: WeChat does not sign it; its SHA1 was given.
    return Response(found[1].encode(), media_type="application/octet-stream")


# ---- test controls -------------------------------------------------------------------------

async def _json(request: Request) -> dict:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"code": "PARAM_ERROR", "message": message}, status_code=status)


async def fail_next_transfer(request: Request) -> JSONResponse:
    data = await _json(request)
    if not data.get("mchid"):
        return _bad("mchid is required")
    _funds(request).fail_next[str(data["mchid"])] = str(data.get("reason") or "ACCOUNT_FROZEN")
    return JSONResponse({"ok": True})


async def settle_transfer(request: Request) -> JSONResponse:
    funds = _funds(request)
    data = await _json(request)
    no = request.path_params["out_bill_no"]
    key = next((k for k in funds.bills if k[1] == no), None)
    if key is None:
        return _bad("no such out_bill_no", 404)
    state = data.get("state", "SUCCESS")
    if state not in TRANSFER_STATES:
        return _bad(f"state: one of {', '.join(TRANSFER_STATES)}")
    bill = funds.bills[key]
    bill.update(state=state, update_time=_now_text(),
                fail_reason=str(data.get("fail_reason") or "ACCOUNT_FROZEN") if state == "FAIL" else "")
    return JSONResponse(_bill_detail(bill))


async def list_transfers(request: Request) -> JSONResponse:
    funds = _funds(request)
    mchid = request.query_params.get("mchid", "")
    return JSONResponse({"bills": [_bill_detail(b) for (m, _), b in funds.bills.items() if m == mchid],
                         "requests": funds.transfer_requests})


async def sharing_settings(request: Request) -> JSONResponse:
    funds = _funds(request)
    data = await _json(request)
    if not data.get("mchid"):
        return _bad("mchid is required")
    mchid = str(data["mchid"])
    if "max_ratio_bp" in data:
        if not isinstance(data["max_ratio_bp"], int) or not 0 <= data["max_ratio_bp"] <= 10000:
            return _bad("max_ratio_bp: 0 to 10000")
        funds.max_ratio_bp[mchid] = data["max_ratio_bp"]
    if "finish_at_once" in data:
        funds.finish_at_once[mchid] = bool(data["finish_at_once"])
    return JSONResponse({"max_ratio_bp": funds.max_ratio_bp.get(mchid, DEFAULT_MAX_RATIO_BP),
                         "finish_at_once": funds.finish_at_once.get(mchid, False)})


async def finish_share(request: Request) -> JSONResponse:
    funds = _funds(request)
    data = await _json(request)
    no = request.path_params["out_order_no"]
    key = next((k for k in funds.shares if k[1] == no), None)
    if key is None:
        return _bad("no such out_order_no", 404)
    result = data.get("result", "SUCCESS")
    if result not in ("SUCCESS", "CLOSED"):
        return _bad("result: SUCCESS or CLOSED")
    _finish(funds.shares[key], result, str(data.get("fail_reason") or ""))
    return JSONResponse(_share_answer(funds.shares[key]))


async def list_shares(request: Request) -> JSONResponse:
    funds = _funds(request)
    mchid = request.query_params.get("mchid", "")
    return JSONResponse({"orders": [o for (m, _), o in funds.shares.items() if m == mchid],
                         "returns": [r for (m, _), r in funds.returns.items() if m == mchid]})


async def set_fee_rate(request: Request) -> JSONResponse:
    data = await _json(request)
    rate = data.get("rate_bp")
    if not data.get("mchid") or not isinstance(rate, int) or not 0 <= rate <= 10000:
        return _bad("mchid and rate_bp (0 to 10000) are required")
    _funds(request).fee_rate_bp[str(data["mchid"])] = rate
    return JSONResponse({"ok": True})


async def add_discrepancy(request: Request) -> JSONResponse:
    data = await _json(request)
    kind, day = data.get("kind"), str(data.get("bill_date") or "")
    if not data.get("mchid") or kind not in ("DROP", "AMOUNT", "EXTRA") or not _DATE.match(day):
        return _bad("mchid, bill_date (yyyy-MM-DD) and kind (DROP, AMOUNT or EXTRA) are required")
    amount = data.get("amount", 0)
    if not isinstance(amount, int) or amount < 0 or (kind == "AMOUNT" and not amount):
        return _bad("amount: fen, positive for AMOUNT")
    _funds(request).discrepancies.setdefault((str(data["mchid"]), day), []).append(
        Discrepancy(kind=kind, out_no=str(data.get("out_no") or ""), amount=amount))
    return JSONResponse({"ok": True})


routes = [
    Route("/v3/fund-app/mch-transfer/transfer-bills", transfer, methods=["POST"]),
    Route("/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}", query_transfer, methods=["GET"]),
    Route("/v3/profitsharing/orders", share, methods=["POST"]),
    Route("/v3/profitsharing/orders/unfreeze", unfreeze, methods=["POST"]),
    Route("/v3/profitsharing/orders/{out_order_no}", query_share, methods=["GET"]),
    Route("/v3/profitsharing/return-orders", return_share, methods=["POST"]),
    Route("/v3/profitsharing/return-orders/{out_return_no}", query_return, methods=["GET"]),
    Route("/v3/bill/tradebill", trade_bill, methods=["GET"]),
    Route("/v3/billdownload/file", download, methods=["GET"]),
]
control_routes = [
    Route("/funds/transfers/fail-next", fail_next_transfer, methods=["POST"]),
    Route("/funds/transfers/{out_bill_no}/settle", settle_transfer, methods=["POST"]),
    Route("/funds/transfers", list_transfers, methods=["GET"]),
    Route("/funds/profitsharing/settings", sharing_settings, methods=["POST"]),
    Route("/funds/profitsharing/{out_order_no}/finish", finish_share, methods=["POST"]),
    Route("/funds/profitsharing", list_shares, methods=["GET"]),
    Route("/funds/bills/fee-rate", set_fee_rate, methods=["POST"]),
    Route("/funds/bills/discrepancy", add_discrepancy, methods=["POST"]),
]


def setup(app) -> None:
    app.state.standin_funds = FundsState()
