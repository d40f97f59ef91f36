"""How many people watch a live session, as the live-session use cases read it. The
figures are kept from the gateways' viewer reports (application/live_viewers.py); the
session itself never stores them, so a busy room's reports never contend with staff edits."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

from services.content.domain.live_room import Figures, Lease, Purchase


@dataclass(frozen=True)
class ViewerFigures:
    unique: int = 0  # members who ever watched the session, each once
    concurrent: int = 0  # connected now, summed over the gateways' unexpired leases
    peak: int = 0  # the highest concurrent figure so far


class LiveViewerStats(Protocol):
    async def figures(self, merchant_id: str, live_session_ids: Sequence[str]) -> Mapping[str, ViewerFigures]:
        """The figures of each session asked for; a session nobody watched yet is absent."""
        ...


# ---- what the viewer reports and the room's purchase announcements need -------------------

class ViewerReports(Protocol):
    """The per-session viewer records behind LiveViewerStats (adapters/live_viewer_store.py)."""

    async def add_viewers(self, merchant_id: str, live_session_id: str, member_ids: Sequence[str]) -> int:
        """Counts each member once per session: how many of these were not counted before."""
        ...

    async def renew_lease(self, merchant_id: str, live_session_id: str, lease: Lease) -> None:
        ...

    async def leases(self, merchant_id: str, live_session_id: str) -> list[Lease]:
        ...

    async def record(self, merchant_id: str, live_session_id: str, new_unique: int,
                     concurrent: int) -> tuple[Figures, Figures, int]:
        """Adds `new_unique` viewers, sets the concurrent figure and keeps its peak, in one
        write. (figures now, figures last announced, when they were announced in epoch ms)."""
        ...

    async def announce(self, merchant_id: str, live_session_id: str, figures: Figures, announced_ms: int,
                       now_ms: int) -> bool:
        """Marks `figures` announced at `now_ms` and puts viewers_changed into the room, if the
        last announcement is still the one at `announced_ms` (False: another replica did)."""
        ...


class RoomPurchases(Protocol):
    async def announce_once(self, purchase: Purchase) -> bool:
        """Tells the room of the purchase unless this order was told already (False then)."""
        ...


class LiveSessions(Protocol):
    async def exists(self, merchant_id: str, live_session_id: str) -> bool:
        ...
