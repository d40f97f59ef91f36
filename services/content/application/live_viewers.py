"""The viewers of live sessions, as the gateways report them, and the purchases the room
is told of.

A report is a lease: a gateway process's connected count, valid for `lease_seconds`; the
concurrent figure is the sum over unexpired leases, so a gateway that dies stops counting
on its own. Unique viewers count a member once per session however often they reconnect
(one record per member and session). The room hears of the figures at most once a
second, and only when one changed: one conditional write on the figures' record decides
which replica announces."""
from __future__ import annotations

from dataclasses import dataclass

from siyu_kit import context
from siyu_kit.errors import NotFound, Violations
from siyu_kit.ids import is_id

from services.content.application.clock import Clock, now_ms
from services.content.application.live_viewer_ports import (LiveSessions, LiveViewerStats, RoomPurchases,
                                                            ViewerFigures, ViewerReports)
from services.content.domain import live_room as rules
from services.content.domain.live_room import Figures, Lease, Purchase


@dataclass(frozen=True)
class ViewerReport:
    live_session_id: str
    gateway_id: str
    concurrent: int
    joined_member_ids: tuple[str, ...]
    lease_seconds: int


class LiveViewerUseCases:
    def __init__(self, reports: ViewerReports, stats: LiveViewerStats, sessions: LiveSessions | None = None,
                 clock: Clock = now_ms):
        self.reports = reports
        self.stats = stats
        # Whether a session is the merchant's; None: the gateway's own check (GetLiveRoom) is trusted.
        self.sessions = sessions
        self.clock = clock

    async def report(self, report: ViewerReport) -> Figures:
        merchant_id = context.current().require_merchant()
        v = Violations()
        v.check(len(report.joined_member_ids) <= rules.MAX_JOINED, "joined_member_ids",
                f"at most {rules.MAX_JOINED} per report")
        for i, member_id in enumerate(report.joined_member_ids[:rules.MAX_JOINED]):
            if not v.check(is_id(member_id, "mem"), f"joined_member_ids[{i}]", "must be a mem_ id"):
                break
        v.raise_if_any()
        if self.sessions is not None and not await self.sessions.exists(merchant_id, report.live_session_id):
            raise NotFound("no such live session", reason="LIVE_SESSION_NOT_FOUND")
        session_id = report.live_session_id
        added = 0
        if report.joined_member_ids:
            added = await self.reports.add_viewers(merchant_id, session_id, sorted(set(report.joined_member_ids)))
        now = self.clock()
        await self.reports.renew_lease(merchant_id, session_id, Lease(report.gateway_id, report.concurrent,
                                                                      now + report.lease_seconds * 1000))
        concurrent = rules.concurrent_of(await self.reports.leases(merchant_id, session_id), now)
        figures, announced, announced_ms = await self.reports.record(merchant_id, session_id, added, concurrent)
        if rules.should_announce(figures, announced, announced_ms, now):
            await self.reports.announce(merchant_id, session_id, figures, announced_ms, now)
        return figures

    async def figures(self, live_session_id: str) -> ViewerFigures:
        merchant_id = context.current().require_merchant()
        found = await self.stats.figures(merchant_id, [live_session_id])
        return found.get(live_session_id, ViewerFigures())


class LivePurchaseUseCases:
    """"Someone just bought": a paid order attributed to a live session, told once."""

    def __init__(self, purchases: RoomPurchases):
        self.purchases = purchases

    async def paid(self, purchase: Purchase) -> bool:
        return await self.purchases.announce_once(purchase)
