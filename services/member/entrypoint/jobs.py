"""The points jobs: unfreeze points whose after-sales window closed, expire lots whose
last day ended, and store ledger entries a crash left owing. Several replicas may run
them at once: each account is claimed by a conditional update, and every movement is
guarded by its cause, so two copies never move the same points twice."""
from __future__ import annotations

from siyu_kit.config import env_seconds
from siyu_kit.service import Job

from services.member.application.points import PointsEconomy


def points_interval_s() -> float:
    return env_seconds("MEMBER_POINTS_JOB_INTERVAL_S", 60)


def jobs(economy: PointsEconomy) -> list[Job]:
    interval = points_interval_s()
    return [Job("member-points-unfreeze", interval, economy.unfreeze_due),
            Job("member-points-expiry", interval, economy.expire_due),
            Job("member-points-ledger-repair", interval, economy.repair)]
