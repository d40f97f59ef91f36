"""WeChat Pay API v3 endpoints of the stand-in (JSAPI prepay, query, refund, notifications).
`routes` are served at WeChat Pay's paths, `control_routes` under /_standin/; `setup(app)`
(optional) runs once when the app is built."""
from __future__ import annotations

routes: list = []
control_routes: list = []
