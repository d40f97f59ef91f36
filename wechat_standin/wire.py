"""WeChat's answer shapes: a success is the documented JSON object; a refusal is
{"errcode": <number>, "errmsg": <text>} with HTTP 200, as WeChat sends it."""
from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

# WeChat's documented error codes used by the stand-in.
BUSY = (-1, "system error")
INVALID_CREDENTIAL = (40001, "invalid credential, access_token is invalid or not latest")
INVALID_GRANT_TYPE = (40002, "invalid grant_type")
INVALID_OPENID = (40003, "invalid openid")
INVALID_APPID = (40013, "invalid appid")
INVALID_CODE = (40029, "invalid code")
INVALID_APPSECRET = (40125, "invalid appsecret")
CODE_USED = (40163, "code been used")
MISSING_APPID = (41002, "appid missing")
MISSING_SECRET = (41004, "appsecret missing")
MISSING_CODE = (41008, "missing code")
ACCESS_TOKEN_EXPIRED = (42001, "access_token expired")
DATA_FORMAT = (47001, "data format error")


def ok(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body)


def refuse(error: tuple[int, str]) -> JSONResponse:
    errcode, errmsg = error
    return JSONResponse({"errcode": errcode, "errmsg": f"{errmsg} rid: standin"})


async def json_body(request: Request) -> dict[str, Any] | None:
    """The request's JSON object, or None when the body is not one."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
