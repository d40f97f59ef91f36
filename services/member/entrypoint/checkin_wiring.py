"""The check-in part of the member service's wiring: the use cases over the MongoDB
stores and the points ledger, and the job that pays check-ins a crash left unpaid (safe
on every replica at once: a check-in's points movement applies once whoever writes it)."""
from __future__ import annotations

from services.member.adapters import checkin_store, repositories
from services.member.application.checkin import CheckIns
from services.member.application.ports import MemberRepository, MerchantRepository, PointsLedger
from siyu_kit import service
from siyu_kit.config import env_seconds


def use_cases(members: MemberRepository, merchants: MerchantRepository, ledger: PointsLedger) -> CheckIns:
    checkin_store.ensure_indexes()
    return CheckIns(checkin_store.CheckInRepository(), checkin_store.CheckInSettingsRepository(), members,
                    merchants, ledger, repositories.AuditLogRepository())


def outbox_collections() -> list:
    return checkin_store.outbox_collections()


def jobs(checkin: CheckIns) -> list[service.Job]:
    return [service.Job("member-checkin-repair", env_seconds("MEMBER_CHECKIN_REPAIR_INTERVAL_S", 30),
                        checkin.repair)]
