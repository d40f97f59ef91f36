"""The stand-in's application, put together from one module per WeChat product: each
module in MODULES has `routes` (WeChat's own endpoints, at WeChat's paths) and
`control_routes` (test controls, mounted under /_standin/)."""
from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from wechat_standin import funds, login, pay, sms
from wechat_standin.state import StandinState

MODULES = (login, sms, pay, funds)


async def healthz(request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def build_app(state: StandinState | None = None) -> Starlette:
    routes = [Route("/healthz", healthz)]
    controls = []
    for module in MODULES:
        routes += list(module.routes)
        controls += list(module.control_routes)
    app = Starlette(routes=[*routes, Mount("/_standin", routes=controls)])
    app.state.standin = state or StandinState()
    for module in MODULES:
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(app)
    return app
