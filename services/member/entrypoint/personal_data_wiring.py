"""The personal-data part of the member service's wiring: members' erasure (the use cases
and the member service's own consumer of member.erased), members' data exports, the job
that gathers them (every SIYU_MEMBER_DATA_EXPORT_INTERVAL_S, 10 s by default; each export
leased to one replica at a time) and the one that deletes expired documents (the same
interval times six)."""
from __future__ import annotations

from services.member.adapters import personal_data_store as store
from siyu.common.v1 import common_pb2
from siyu.member.v1 import events_pb2

from services.member.application.personal_data import DataExports, Erasures
from siyu_kit import service
from siyu_kit.config import env_seconds
from siyu_kit.events.consumer import Poison, Subscription
from siyu_kit.sealing import Sealer


def interval_s() -> float:
    return env_seconds("MEMBER_DATA_EXPORT_INTERVAL_S", 10)


def use_cases(runtime: service.Runtime) -> DataExports:
    store.ensure_indexes()
    sealer = Sealer.from_setting(runtime.settings.data_key)
    return DataExports(store.DataExportRepository(sealer),
                       {"member": store.MemberOwnData(sealer), "order": store.OrderData(runtime.channel("order")),
                        "catalog": store.CatalogData(runtime.channel("catalog")),
                        "content": store.ContentData(runtime.channel("content"))})


def jobs(exports: DataExports) -> list[service.Job]:
    return [service.Job("member-data-exports", interval_s(), exports.gather_due),
            service.Job("member-data-export-expiry", interval_s() * 6, exports.expire_due)]


def erasures(runtime: service.Runtime, guard_key: bytes) -> Erasures:
    """Erasure: the farm guard hashes with the referral service's key, so an erased phone
    or unionid is found when the person registers again."""
    return Erasures(store.ErasureRepository(Sealer.from_setting(runtime.settings.data_key), guard_key))


def subscriptions(erasures: Erasures) -> list[Subscription]:
    async def on_member_erased(envelope: common_pb2.EventEnvelope, erased: events_pb2.MemberErased) -> None:
        if not (envelope.merchant_id and erased.member_id):
            raise Poison("a MemberErased needs a merchant and a member")
        # Idempotent: erasing twice deletes nothing more, the acknowledgement is a $set.
        await erasures.erase_own(envelope.merchant_id, erased.member_id)

    return [Subscription.to("member-member-erased", events_pb2.MemberErased, on_member_erased)]
