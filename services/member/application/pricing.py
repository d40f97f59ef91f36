"""A member's tier and the merchant's price discount for it, for checkout pricing in the
order service (GetMemberPricing)."""
from __future__ import annotations

import time

from services.member.application.merchants import merchant_config
from services.member.application.ports import MerchantRepository, PointsLedger
from services.member.domain import tiers
from services.member.domain.config import TIERS, MerchantConfig
from siyu_kit import context
from siyu_kit.errors import Violations
from siyu_kit.events.invalidation import TtlCache
from siyu_kit.ids import is_id

# Every order and quote asks: the merchant's config is kept this long in the process, so a
# changed tier discount reaches checkout at most this late.
CONFIG_TTL_S = 5.0


class MemberPricing:
    def __init__(self, merchants: MerchantRepository, ledger: PointsLedger, config_ttl_s: float = CONFIG_TTL_S,
                 growth: TtlCache[tuple[str, str], int] | None = None):
        self.merchants = merchants
        self.ledger = ledger
        # A member's growth by (merchant, member), kept until a points event of theirs
        # (every change of growth is one) drops it; None: read on every call.
        self.growth = growth
        self._ttl_s = config_ttl_s
        self._configs: dict[str, tuple[float, MerchantConfig]] = {}

    async def _config(self, merchant_id: str) -> MerchantConfig:
        hit = self._configs.get(merchant_id)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        config = await merchant_config(self.merchants, merchant_id)
        self._configs[merchant_id] = (time.monotonic() + self._ttl_s, config)
        return config

    async def of(self, member_id: str) -> tuple[str, int]:
        """(tier name, discount in basis points). One read of the member's growth entries:
        the member document itself is not read, because the caller's member id comes from
        a token this service issued, and a member without growth is at the first tier."""
        merchant_id = context.current().require_merchant()
        v = Violations()
        v.check(is_id(member_id, "mem"), "member_id", "must be a mem_ id")
        v.raise_if_any()
        growth = await self._growth(merchant_id, member_id)
        config = await self._config(merchant_id)
        index = tiers.tier_index(growth, config.tier_thresholds)
        return TIERS[index], config.tier_discount_bp[index]

    async def _growth(self, merchant_id: str, member_id: str) -> int:
        async def read() -> int:
            return (await self.ledger.account(merchant_id, member_id)).growth

        if self.growth is None:
            return await read()
        return await self.growth.get_or_load((merchant_id, member_id), read)

    def points_moved(self, merchant_id: str, member_id: str) -> None:
        """A points event of the member: their growth may have changed."""
        if self.growth is not None:
            self.growth.drop((merchant_id, member_id))
