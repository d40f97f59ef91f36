"""In-memory fakes of the WeChat Pay ports the order service stores through: the
credentials (kept as given: sealing is the store adapter's business, tested against the
real database) and the notifications already taken."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.order.domain.payments import WechatCredentials


@dataclass
class FakeWechatCredentials:
    stored: dict[tuple[str, str], WechatCredentials] = field(default_factory=dict)

    async def get(self, merchant_id: str, channel: str) -> WechatCredentials | None:
        return self.stored.get((merchant_id, channel))

    async def of_merchant(self, merchant_id: str) -> list[WechatCredentials]:
        return [c for (m, _), c in sorted(self.stored.items()) if m == merchant_id]

    async def put(self, credentials: WechatCredentials) -> None:
        self.stored[(credentials.merchant_id, credentials.channel)] = credentials


@dataclass
class FakeSeenNotifications:
    seen: set[tuple[str, str]] = field(default_factory=set)

    async def remember(self, merchant_id: str, key: str, at: datetime) -> bool:
        if (merchant_id, key) in self.seen:
            return False
        self.seen.add((merchant_id, key))
        return True


@dataclass
class FakeWechatIdentities:
    """The member service's openids by (member, channel); `calls` counts the reads."""
    openids: dict[tuple[str, str], str] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def openid(self, member_id: str, channel: str) -> str | None:
        self.calls.append((member_id, channel))
        return self.openids.get((member_id, channel))
