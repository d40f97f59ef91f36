"""WeChat identity endpoints of the stand-in, at api.weixin.qq.com's paths:

- GET  /sns/jscode2session            mini-program wx.login code → openid, session_key, unionid
- GET  /cgi-bin/token                 app credentials → access_token
- POST /cgi-bin/stable_token          app credentials → access_token (stable variant)
- POST /wxa/business/getuserphonenumber?access_token=   phone-number code → phone_info
- GET  /sns/oauth2/access_token       H5 web-authorisation code → access_token, openid, unionid
- GET  /sns/userinfo                  H5 user access token → profile

Test controls (under /_standin/): POST /apps {appid, secret} registers an app;
POST /codes {appid, openid, unionid, phone?, nickname?, kind?, ttl_s?} mints a code.
"""
from __future__ import annotations

import base64
import hashlib
import re

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wechat_standin import wire
from wechat_standin.state import CODE_TTL_S, StandinState

CODE_KINDS = ("login", "oauth", "phone")
_WORD = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


def _state(request: Request) -> StandinState:
    return request.app.state.standin


def _check_app(state: StandinState, appid: str, secret: str) -> tuple[int, str] | None:
    if not appid:
        return wire.MISSING_APPID
    if not secret:
        return wire.MISSING_SECRET
    if appid not in state.apps:
        return wire.INVALID_APPID
    if state.apps[appid] != secret:
        return wire.INVALID_APPSECRET
    return None


def _session_key(code: str) -> str:
    return base64.b64encode(hashlib.sha256(code.encode()).digest()[:16]).decode()


def _redeem(request: Request, code_param: str, kind: str):
    """Checks the app and takes the single-use code of an authorization_code exchange:
    (state, grant) or WeChat's refusal."""
    q = request.query_params
    state = _state(request)
    problem = _check_app(state, q.get("appid", ""), q.get("secret", ""))
    if problem:
        return wire.refuse(problem)
    if q.get("grant_type") != "authorization_code":
        return wire.refuse(wire.INVALID_GRANT_TYPE)
    if not q.get(code_param):
        return wire.refuse(wire.MISSING_CODE)
    grant, why = state.take_code(q[code_param], kind, q["appid"])
    if grant is None:
        return wire.refuse(wire.CODE_USED if why == "used" else wire.INVALID_CODE)
    return state, grant


async def jscode2session(request: Request) -> JSONResponse:
    q = request.query_params
    redeemed = _redeem(request, "js_code", "login")
    if isinstance(redeemed, JSONResponse):
        return redeemed
    state, grant = redeemed
    body = {"openid": grant.openid, "session_key": _session_key(q["js_code"])}
    if grant.unionid:
        body["unionid"] = grant.unionid
    return wire.ok(body)


def _client_token(state: StandinState, appid: str, secret: str, grant_type: str,
                  force_refresh: bool = False, stable: bool = False) -> JSONResponse:
    problem = _check_app(state, appid, secret)
    if problem:
        return wire.refuse(problem)
    if grant_type != "client_credential":
        return wire.refuse(wire.INVALID_GRANT_TYPE)
    if stable and not force_refresh:
        current = state.stable.get(appid)
        found, _ = state.token(current) if current else (None, "")
        if found is not None:
            return wire.ok({"access_token": current, "expires_in": int(found.expires_at - state.clock())})
    token, expires_in = state.issue_token(appid)
    if stable:
        state.stable[appid] = token
    return wire.ok({"access_token": token, "expires_in": expires_in})


async def cgi_token(request: Request) -> JSONResponse:
    q = request.query_params
    return _client_token(_state(request), q.get("appid", ""), q.get("secret", ""), q.get("grant_type", ""))


async def stable_token(request: Request) -> JSONResponse:
    body = await wire.json_body(request)
    if body is None:
        return wire.refuse(wire.DATA_FORMAT)
    return _client_token(_state(request), str(body.get("appid", "")), str(body.get("secret", "")),
                         str(body.get("grant_type", "")), bool(body.get("force_refresh")), stable=True)


async def getuserphonenumber(request: Request) -> JSONResponse:
    state = _state(request)
    token, why = state.token(request.query_params.get("access_token", ""))
    if token is None:
        return wire.refuse(wire.ACCESS_TOKEN_EXPIRED if why == "expired" else wire.INVALID_CREDENTIAL)
    if token.openid:  # a user's H5 token is not an app's access token
        return wire.refuse(wire.INVALID_CREDENTIAL)
    body = await wire.json_body(request)
    if body is None:
        return wire.refuse(wire.DATA_FORMAT)
    if not body.get("code"):
        return wire.refuse(wire.MISSING_CODE)
    grant, why = state.take_code(str(body["code"]), "phone", token.appid)
    if grant is None:
        return wire.refuse(wire.CODE_USED if why == "used" else wire.INVALID_CODE)
    pure = grant.phone.removeprefix("+86")
    return wire.ok({"errcode": 0, "errmsg": "ok", "phone_info": {
        "phoneNumber": pure, "purePhoneNumber": pure, "countryCode": "86",
        "watermark": {"timestamp": int(state.clock()), "appid": token.appid}}})


async def oauth2_access_token(request: Request) -> JSONResponse:
    q = request.query_params
    redeemed = _redeem(request, "code", "oauth")
    if isinstance(redeemed, JSONResponse):
        return redeemed
    state, grant = redeemed
    token, expires_in = state.issue_token(q["appid"], openid=grant.openid, unionid=grant.unionid,
                                          nickname=grant.nickname)
    body = {"access_token": token, "expires_in": expires_in, "refresh_token": _session_key(token),
            "openid": grant.openid, "scope": "snsapi_userinfo", "is_snapshotuser": 0}
    if grant.unionid:
        body["unionid"] = grant.unionid
    return wire.ok(body)


async def userinfo(request: Request) -> JSONResponse:
    q = request.query_params
    token, why = _state(request).token(q.get("access_token", ""))
    if token is None or not token.openid:
        return wire.refuse(wire.ACCESS_TOKEN_EXPIRED if why == "expired" else wire.INVALID_CREDENTIAL)
    if q.get("openid") != token.openid:
        return wire.refuse(wire.INVALID_OPENID)
    body = {"openid": token.openid, "nickname": token.nickname, "sex": 0, "province": "", "city": "",
            "country": "", "headimgurl": "", "privilege": []}
    if token.unionid:
        body["unionid"] = token.unionid
    return wire.ok(body)


# ---- test controls -------------------------------------------------------------------

def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def register_app(request: Request) -> JSONResponse:
    body = await wire.json_body(request) or {}
    appid, secret = str(body.get("appid", "")), str(body.get("secret", ""))
    if not _WORD.fullmatch(appid) or not _WORD.fullmatch(secret):
        return _bad("appid and secret are required words")
    _state(request).apps[appid] = secret
    return JSONResponse({"appid": appid})


async def mint_code(request: Request) -> JSONResponse:
    body = await wire.json_body(request) or {}
    kind = str(body.get("kind", "login"))
    appid, openid = str(body.get("appid", "")), str(body.get("openid", ""))
    unionid, phone = str(body.get("unionid", "")), str(body.get("phone", ""))
    if kind not in CODE_KINDS:
        return _bad(f"kind must be one of {CODE_KINDS}")
    if appid not in _state(request).apps:
        return _bad("register the app first (POST /_standin/apps)")
    if kind == "phone" and not phone:
        return _bad("a phone code needs a phone")
    if kind != "phone" and not openid:
        return _bad("a login code needs an openid")
    try:
        ttl_s = float(body.get("ttl_s", CODE_TTL_S))
    except (TypeError, ValueError):
        return _bad("ttl_s must be a number")
    code = _state(request).mint_code(kind, appid, openid, unionid, phone, str(body.get("nickname", "")), ttl_s)
    return JSONResponse({"code": code})


routes = [
    Route("/sns/jscode2session", jscode2session, methods=["GET"]),
    Route("/cgi-bin/token", cgi_token, methods=["GET"]),
    Route("/cgi-bin/stable_token", stable_token, methods=["POST"]),
    Route("/wxa/business/getuserphonenumber", getuserphonenumber, methods=["POST"]),
    Route("/sns/oauth2/access_token", oauth2_access_token, methods=["GET"]),
    Route("/sns/userinfo", userinfo, methods=["GET"]),
]
control_routes = [
    Route("/apps", register_app, methods=["POST"]),
    Route("/codes", mint_code, methods=["POST"]),
]
