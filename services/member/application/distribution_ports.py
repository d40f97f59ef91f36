"""What the distribution and guide use cases need from outside. Implementations live in
services/member/adapters/distribution_store.py and are wired in at start-up
(services/member/entrypoint/distribution_wiring.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.member.domain.distribution import Binding, DistributionSettings, Distributor, DistributorLevel


@dataclass(frozen=True)
class CustomerTies:
    """A member's bindings as a customer, read in one go: the distributor (and that
    distributor's upline, fixed when they became one) and the exclusive guide."""
    binding: Binding = Binding()
    upline_id: str = ""
    guide_id: str = ""
    guide_ms: int = 0


@dataclass(frozen=True)
class MemberCard:
    member_id: str
    nickname: str = ""
    phone: str = ""
    tags: tuple[str, ...] = ()
    last_paid_ms: int = 0


class DistributionSettingsStore(Protocol):
    async def get(self, merchant_id: str) -> tuple[DistributionSettings, int]:
        """The settings and their version (defaults and 0 before the first change)."""
        ...

    async def put(self, merchant_id: str, settings: DistributionSettings, expected_version: int) -> int | None:
        """Stores the settings when still at `expected_version`: the new version, or None."""
        ...


class LevelStore(Protocol):
    async def get(self, merchant_id: str, level_id: str) -> DistributorLevel | None: ...

    async def all(self, merchant_id: str) -> list[DistributorLevel]: ...

    async def add(self, level: DistributorLevel, idempotency_key: str) -> tuple[DistributorLevel, bool]:
        """Stores a level once per key: (the level stored under the key, created)."""
        ...

    async def save(self, level: DistributorLevel) -> None:
        """Compare-and-set on the version read; StaleVersion on a lost race."""
        ...


class DistributorStore(Protocol):
    async def of_member(self, merchant_id: str, member_id: str) -> Distributor | None: ...

    async def of_members(self, merchant_id: str, member_ids: list[str]) -> dict[str, Distributor]:
        """Several distributors in one read, by member id."""
        ...

    async def add(self, distributor: Distributor) -> bool:
        """False when the member has a record already (one per member and merchant)."""
        ...

    async def save(self, distributor: Distributor) -> None:
        """Compare-and-set on the version read; StaleVersion on a lost race."""
        ...

    async def page(self, merchant_id: str, state: str, before_id: str, limit: int) -> list[Distributor]:
        """Newest first (ids below `before_id` when given), of one state or all ("")."""
        ...

    async def downline(self, merchant_id: str, upline_id: str, before_id: str, limit: int) -> list[Distributor]:
        """Distributors whose upline is `upline_id`, newest first."""
        ...

    async def count_downline(self, merchant_id: str, upline_id: str) -> int: ...


class CustomerStore(Protocol):
    async def of(self, merchant_id: str, member_id: str) -> CustomerTies: ...

    async def bind_distributor(self, merchant_id: str, member_id: str, current: Binding, new: Binding,
                               upline_id: str) -> bool:
        """ONE conditional update from the binding read (`current`) to `new`; False when
        the binding changed meanwhile."""
        ...

    async def bind_guide(self, merchant_id: str, member_id: str, current_guide_id: str, guide_id: str,
                         now_ms: int) -> bool:
        """ONE conditional update of the exclusive guide from `current_guide_id` ("" when
        none); False when it changed meanwhile."""
        ...

    async def customers(self, merchant_id: str, distributor_id: str, after_key: str,
                        limit: int) -> list[tuple[str, int, str]]:
        """(member id, bound ms, position) of customers bound to the distributor, newest
        binding first, after `after_key`."""
        ...

    async def count_customers(self, merchant_id: str, distributor_id: str, since_ms: int) -> int:
        """Customers bound to the distributor at or after `since_ms` (the unexpired ones)."""
        ...

    async def guide_customers(self, merchant_id: str, guide_id: str, after_key: str,
                              limit: int) -> list[tuple[str, int, str]]:
        """As `customers`, for an exclusive guide."""
        ...


class BindingHistory(Protocol):
    async def add(self, merchant_id: str, member_id: str, kind: str, before_id: str, after_id: str, source: str,
                  actor_id: str, at_ms: int) -> None:
        """Records one binding change (kind DISTRIBUTOR or GUIDE)."""
        ...


class GuideProfiles(Protocol):
    async def store_of(self, merchant_id: str, guide_id: str) -> str: ...

    async def set_store(self, merchant_id: str, guide_id: str, store: str) -> None: ...


class SpendStore(Protocol):
    async def record(self, merchant_id: str, member_id: str, order_id: str, net: int) -> int:
        """Counts an order's paid amount net of refunds in the member's spend (its first
        sighting; later sightings only lower it, as refunds do): ONE conditional update.
        The member's spend afterwards."""
        ...


class MemberCards(Protocol):
    async def cards(self, merchant_id: str, member_ids: list[str], contact: bool) -> dict[str, MemberCard]:
        """Nicknames (and with `contact`, phones, tags and the last paid order) of members."""
        ...


class Guides(Protocol):
    async def is_guide(self, merchant_id: str, staff_id: str) -> bool:
        """Whether the staff user is an enabled GUIDE of the merchant."""
        ...
