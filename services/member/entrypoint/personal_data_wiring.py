"""The personal-data part of the member service's wiring: members' data exports, the job
that gathers them (every SIYU_MEMBER_DATA_EXPORT_INTERVAL_S, 10 s by default; each export
leased to one replica at a time) and the one that deletes expired documents (the same
interval times six)."""
from __future__ import annotations

from services.member.adapters import personal_data_store as store
from services.member.application.personal_data import DataExports
from siyu_kit import service
from siyu_kit.config import env_seconds
from siyu_kit.sealing import Sealer


def interval_s() -> float:
    return env_seconds("MEMBER_DATA_EXPORT_INTERVAL_S", 10)


def use_cases(runtime: service.Runtime) -> DataExports:
    store.ensure_indexes()
    sealer = Sealer.from_setting(runtime.settings.data_key)
    return DataExports(store.DataExportRepository(sealer),
                       {"member": store.MemberOwnData(sealer), "order": store.OrderData(runtime.channel("order")),
                        "catalog": store.CatalogData(runtime.channel("catalog"))})


def jobs(exports: DataExports) -> list[service.Job]:
    return [service.Job("member-data-exports", interval_s(), exports.gather_due),
            service.Job("member-data-export-expiry", interval_s() * 6, exports.expire_due)]
