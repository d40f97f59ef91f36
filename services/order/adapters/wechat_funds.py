"""WeChat Pay API v3's money-out and statement calls, through the WechatPayClient (its
signed requests and verified answers): 商家转账 (transfer bills), 分账 (profit sharing and
its returns), and the trade bill (申请交易账单, then the file, checked against its SHA1).
Only the base URL differs between WeChat and the local stand-in."""
from __future__ import annotations

import csv
import hashlib
import io
from datetime import date, datetime, timedelta, timezone
from urllib.parse import quote

from siyu_kit.errors import Unavailable

from services.order.adapters.wechat_pay import UNAVAILABLE, WechatPayClient
from services.order.application.provider_ports import StatementRow
from services.order.domain.payments import WechatCredentials

TRANSFER = "/v3/fund-app/mch-transfer/transfer-bills"
TRANSFER_QUERY = "/v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}"
SHARE = "/v3/profitsharing/orders"
SHARE_QUERY = "/v3/profitsharing/orders/{out_order_no}?transaction_id={transaction_id}"
SHARE_RETURN = "/v3/profitsharing/return-orders"
SHARE_RETURN_QUERY = "/v3/profitsharing/return-orders/{out_return_no}?out_order_no={out_order_no}"
UNFREEZE = "/v3/profitsharing/orders/unfreeze"
TRADE_BILL = "/v3/bill/tradebill?bill_date={day}&bill_type=ALL"
# 转账场景: 佣金报酬 (commission), with the report WeChat requires for it.
TRANSFER_SCENE_ID = "1005"
TRANSFER_SCENE_REPORT = [{"info_type": "岗位类型", "info_content": "推广员"},
                         {"info_type": "报酬说明", "info_content": "推广佣金"}]
DEFAULT_REMARK = "佣金提现"
_CN = timezone(timedelta(hours=8))


def out_bill_no(transfer_id: str) -> str:
    """WeChat's 商户单号 takes letters and digits only: the id without its underscore
    (wdr_01J… → wdr01J…), still unique since the prefix is letters and the rest a ULID."""
    return transfer_id.replace("_", "")


def _fen(text: str) -> int:
    text = text.strip()
    negative = text.startswith("-")
    whole, _, cents = text.lstrip("-").partition(".")
    value = int(whole or 0) * 100 + int((cents + "00")[:2])
    return -value if negative else value


def parse_trade_bill(text: str) -> list[StatementRow]:
    """The detail rows of an ALL trade bill: every field backtick-prefixed, amounts in yuan,
    columns read by their header (WeChat may add columns); the two summary lines ignored."""
    lines = [line for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    if not lines:
        return []
    header = [h.strip().lstrip("`") for h in next(csv.reader([lines[0]]))]
    col = {name: i for i, name in enumerate(header)}
    rows = []
    for record in csv.reader(io.StringIO("\n".join(lines[1:]))):
        values = [v.strip().lstrip("`") for v in record]
        if len(values) < len(header):
            break  # the summary header and line
        at = datetime.strptime(values[col["交易时间"]], "%Y-%m-%d %H:%M:%S").replace(tzinfo=_CN)
        fee = abs(_fen(values[col["手续费"]]))
        if values[col["交易状态"]] == "REFUND":
            rows.append(StatementRow(kind="REFUND", our_id=values[col["商户退款单号"]],
                                     provider_id=values[col["微信退款单号"]], amount=_fen(values[col["退款金额"]]),
                                     fee=fee, at=at))
        else:
            rows.append(StatementRow(kind="PAYMENT", our_id=values[col["商户订单号"]],
                                     provider_id=values[col["微信订单号"]],
                                     amount=_fen(values[col["应结订单金额"]]), fee=fee, at=at))
    return rows


class WechatFundsApi:
    def __init__(self, client: WechatPayClient):
        self.client = client

    async def transfer(self, creds: WechatCredentials, transfer_id: str, openid: str, amount: int,
                       remark: str) -> dict:
        return await self.client.signed(creds, "POST", TRANSFER, {
            "appid": creds.app_id, "out_bill_no": out_bill_no(transfer_id), "transfer_scene_id": TRANSFER_SCENE_ID,
            "openid": openid, "transfer_amount": amount, "transfer_remark": (remark or DEFAULT_REMARK)[:32],
            "user_recv_perception": "佣金", "transfer_scene_report_infos": TRANSFER_SCENE_REPORT})

    async def query_transfer(self, creds: WechatCredentials, transfer_id: str) -> dict | None:
        path = TRANSFER_QUERY.format(out_bill_no=quote(out_bill_no(transfer_id), safe=""))
        return await self.client.signed(creds, "GET", path, allow_404=True)

    async def share(self, creds: WechatCredentials, body: dict) -> dict:
        return await self.client.signed(creds, "POST", SHARE, {"appid": creds.app_id, **body})

    async def query_share(self, creds: WechatCredentials, out_order_no: str, transaction_id: str) -> dict | None:
        path = SHARE_QUERY.format(out_order_no=quote(out_order_no, safe=""), transaction_id=quote(transaction_id))
        return await self.client.signed(creds, "GET", path, allow_404=True)

    async def return_share(self, creds: WechatCredentials, body: dict) -> dict:
        return await self.client.signed(creds, "POST", SHARE_RETURN, body)

    async def unfreeze(self, creds: WechatCredentials, body: dict) -> dict:
        return await self.client.signed(creds, "POST", UNFREEZE, body)

    async def trade_bill(self, creds: WechatCredentials, day: date) -> list[StatementRow]:
        """The day's ALL trade bill of the credentials' mch_id; none on a day without trades
        (WeChat answers NO_STATEMENT_EXIST)."""
        data = await self.client.signed(creds, "GET", TRADE_BILL.format(day=day.isoformat()),
                                       answer_codes=("NO_STATEMENT_EXIST",))
        if data.get("code") == "NO_STATEMENT_EXIST":
            return []
        url, hash_type, hash_value = (str(data.get(k) or "") for k in ("download_url", "hash_type", "hash_value"))
        if not url or hash_type != "SHA1":
            raise Unavailable("WeChat Pay answered without a bill to download", reason=UNAVAILABLE)
        content = await self.client.download(creds, url)
        if hashlib.sha1(content).hexdigest() != hash_value.lower():
            raise Unavailable("WeChat Pay's bill does not match its hash; retry shortly", reason=UNAVAILABLE)
        return parse_trade_bill(content.decode("utf-8"))
