"""The sandbox SMS provider's inbox, next to the WeChat stand-in: Siyu's sandbox SMS
sender delivers here (POST /_standin/sms) and tests or the demo read the latest message
to a phone (GET /_standin/sms?phone=). Test controls only; no WeChat endpoint."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wechat_standin import wire

INBOX_LIMIT = 20


async def deliver(request: Request) -> JSONResponse:
    body = await wire.json_body(request) or {}
    phone, text = str(body.get("phone", "")), str(body.get("text", ""))
    if not phone or not text:
        return JSONResponse({"error": "phone and text are required"}, status_code=400)
    inbox = request.app.state.standin.sms.setdefault(phone, [])
    inbox.append(text)
    del inbox[:-INBOX_LIMIT]
    return JSONResponse({"delivered": True})


async def read(request: Request) -> JSONResponse:
    messages = request.app.state.standin.sms.get(request.query_params.get("phone", ""), [])
    return JSONResponse({"messages": list(messages)})


routes: list = []
control_routes = [Route("/sms", deliver, methods=["POST"]), Route("/sms", read, methods=["GET"])]
