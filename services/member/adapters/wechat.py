"""WeChat's identity API over HTTP (httpx), at SIYU_WECHAT_BASE_URL: https://api.weixin.qq.com
in production, the local stand-in in tests and `make run`. Nothing here logs or returns an
app secret, a session_key or a phone number."""
from __future__ import annotations

import logging
import time

import httpx

from services.member.domain.identity import InvalidLoginCode, ProviderIdentity
from services.member.domain.wechat import WeChatApp
from siyu_kit.errors import Unavailable

# WeChat's error codes meaning "this code is no good": invalid, used, expired.
CODE_REFUSED = {40029: "the code is invalid or expired", 40163: "the code was used already",
                40226: "the code is invalid"}
TIMEOUT_S = 5.0
# httpx logs each request's URL at INFO, and WeChat's documented calls carry the app
# secret in the query string: those lines must never be written.
logging.getLogger("httpx").setLevel(logging.WARNING)


class WeChatHttpApi:
    def __init__(self, base_url: str, client: httpx.AsyncClient | None = None):
        self.base_url = base_url.rstrip("/")
        self.client = client or httpx.AsyncClient(timeout=TIMEOUT_S)
        # appid → (access token, expiry, secret it was issued for)
        self._tokens: dict[str, tuple[str, float, str]] = {}

    async def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            resp = await self.client.request(method, self.base_url + path, **kwargs)
            body = resp.json()
        except (httpx.HTTPError, ValueError) as error:
            raise Unavailable(f"WeChat did not answer ({type(error).__name__})") from None
        if resp.status_code != 200 or not isinstance(body, dict):
            raise Unavailable(f"WeChat answered HTTP {resp.status_code}")
        return body

    @staticmethod
    def _refusal(body: dict) -> None:
        errcode = int(body.get("errcode") or 0)
        if errcode in CODE_REFUSED:
            raise InvalidLoginCode(CODE_REFUSED[errcode])
        if errcode:
            # a wrong appid or secret, or WeChat busy: not the member's fault
            raise Unavailable(f"WeChat refused the call (errcode {errcode})")

    @staticmethod
    def _identity(app: WeChatApp, body: dict) -> ProviderIdentity:
        openid = str(body.get("openid") or "")
        if not openid:
            raise Unavailable("WeChat gave no openid")
        # Without a unionid (app not bound to an open-platform account) the member is known
        # on this app only: a surrogate keeps it from merging with anyone else.
        unionid = str(body.get("unionid") or "") or f"app-{app.appid}-{openid}"[:64]
        return ProviderIdentity(unionid=unionid, openid=openid)

    async def code2session(self, app: WeChatApp, code: str) -> ProviderIdentity:
        body = await self._call("GET", "/sns/jscode2session", params={
            "appid": app.appid, "secret": app.secret, "js_code": code, "grant_type": "authorization_code"})
        self._refusal(body)
        return self._identity(app, body)

    async def web_authorise(self, app: WeChatApp, code: str) -> ProviderIdentity:
        body = await self._call("GET", "/sns/oauth2/access_token", params={
            "appid": app.appid, "secret": app.secret, "code": code, "grant_type": "authorization_code"})
        self._refusal(body)
        return self._identity(app, body)

    async def _access_token(self, app: WeChatApp, force: bool = False) -> str:
        cached = self._tokens.get(app.appid)
        if cached and not force and cached[1] > time.monotonic() and cached[2] == app.secret:
            return cached[0]
        body = await self._call("POST", "/cgi-bin/stable_token", json={
            "grant_type": "client_credential", "appid": app.appid, "secret": app.secret,
            "force_refresh": force})
        self._refusal(body)
        token = str(body.get("access_token") or "")
        if not token:
            raise Unavailable("WeChat gave no access token")
        # renewed five minutes before WeChat's expiry
        self._tokens[app.appid] = (token, time.monotonic() + int(body.get("expires_in") or 0) - 300, app.secret)
        return token

    async def phone_number(self, app: WeChatApp, code: str) -> str:
        for force in (False, True):
            token = await self._access_token(app, force)
            body = await self._call("POST", "/wxa/business/getuserphonenumber", params={"access_token": token},
                                    json={"code": code})
            if int(body.get("errcode") or 0) in (40001, 42001) and not force:
                continue  # the token went stale: once more with a fresh one
            break
        self._refusal(body)
        info = body.get("phone_info") or {}
        if str(info.get("countryCode") or "86") != "86":
            raise InvalidLoginCode("only mainland China numbers are accepted")
        return str(info.get("purePhoneNumber") or "")


class SandboxSms:
    """The sandbox SMS provider: delivers to the local stand-in's inbox
    (POST /_standin/sms), where tests and the demo read the code. Never used with WeChat's
    real base URL."""

    def __init__(self, base_url: str, client: httpx.AsyncClient | None = None):
        self.base_url = base_url.rstrip("/")
        self.client = client or httpx.AsyncClient(timeout=TIMEOUT_S)

    async def send(self, merchant_id: str, phone: str, text: str) -> None:
        try:
            resp = await self.client.post(self.base_url + "/_standin/sms", json={"phone": phone, "text": text})
        except httpx.HTTPError as error:
            raise Unavailable(f"the SMS provider did not answer ({type(error).__name__})") from None
        if resp.status_code != 200:
            raise Unavailable(f"the SMS provider answered HTTP {resp.status_code}")
