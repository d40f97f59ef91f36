"""A local stand-in for WeChat's servers (api.weixin.qq.com and api.mch.weixin.qq.com):
the documented endpoints Siyu calls, with WeChat's documented error shapes, served on a
loopback port so tests and `make run` never need the real WeChat. Siyu's adapters talk to
it over HTTP exactly as they would to WeChat; only SIYU_WECHAT_BASE_URL differs.

Endpoints under /_standin/ are test controls (register an app, mint a code); WeChat has
no such endpoints and Siyu's code never calls them.
"""
