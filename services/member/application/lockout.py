"""Staff login lock-out over shared counters, so every member replica sees the same
count (rules in services.member.domain.lockout)."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

from services.member.application.ports import LoginAttempts
from services.member.domain.lockout import (ACCOUNT, ADDRESS, LoginLimits, counter_id, retry_after_s,
                                            window_of)
from siyu_kit.errors import ResourceExhausted


class LoginGuard:
    def __init__(self, attempts: LoginAttempts, limits: LoginLimits, clock: Callable[[], float] = time.time):
        self.attempts = attempts
        self.limits = limits
        self.clock = clock

    async def enter(self, account: str, address: str) -> list[str]:
        """Takes a slot of this minute for the account and the address (when known); the
        slots taken, to give back on success. Refuses, unchecked, when a window is full."""
        now = self.clock()
        window_s = self.limits.window_s
        window = window_of(now, window_s)
        expires_at = datetime.fromtimestamp((window + 1) * window_s, tz=timezone.utc)
        taken: list[str] = []
        for scope, subject, limit in ((ACCOUNT, account, self.limits.per_account),
                                      (ADDRESS, address, self.limits.per_address)):
            if not subject:
                continue
            cid = counter_id(scope, subject, window)
            if not await self.attempts.take(cid, limit, expires_at):
                await self.succeeded(taken)  # a refused attempt counts nowhere
                raise ResourceExhausted("too many failed logins; retry later", reason="LOGIN_LOCKED",
                                        retry_after_s=retry_after_s(now, window, window_s))
            taken.append(cid)
        return taken

    async def succeeded(self, taken: list[str]) -> None:
        for cid in taken:
            await self.attempts.give_back(cid)
