"""python -m wechat_standin --port 8090: serve the stand-in on 127.0.0.1."""
from __future__ import annotations

import argparse

import uvicorn

from wechat_standin.app import build_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="wechat-standin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    uvicorn.run(build_app(), host=args.host, port=args.port, log_level="warning", access_log=False)


main()
