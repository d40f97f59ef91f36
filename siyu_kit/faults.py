"""Failpoints: a test hook that crashes the process at a named point in the code.

    faults.point("order.place.after_reserve")

does nothing unless the process was started with SIYU_FAILPOINTS naming that point
(comma-separated names); then the process exits at once with EXIT_CODE, without
unwinding, flushing or closing anything — the way a killed pod dies. Tests use it to
prove that a crash between two writes leaves nothing stuck. Never set it in production.
"""
from __future__ import annotations

import os

ENV = "SIYU_FAILPOINTS"
# Distinct from any exit a service makes on its own, so a test can tell the crash apart.
EXIT_CODE = 86

_armed = frozenset(name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip())


def point(name: str) -> None:
    if name in _armed:
        os._exit(EXIT_CODE)
