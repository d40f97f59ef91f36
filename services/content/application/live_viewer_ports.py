"""How many people watch a live session, as the live-session use cases read it. The
figures are kept from the gateways' viewer reports (application/live_viewers.py); the
session itself never stores them, so a busy room's reports never contend with staff edits."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence


@dataclass(frozen=True)
class ViewerFigures:
    unique: int = 0  # members who ever watched the session, each once
    concurrent: int = 0  # connected now, summed over the gateways' unexpired leases
    peak: int = 0  # the highest concurrent figure so far


class LiveViewerStats(Protocol):
    async def figures(self, merchant_id: str, live_session_ids: Sequence[str]) -> Mapping[str, ViewerFigures]:
        """The figures of each session asked for; a session nobody watched yet is absent."""
        ...
