"""The personal-data RPCs of MemberService: proto in, use case, proto out."""
from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from siyu.member.v1 import member_pb2

from services.member.application.personal_data import DataExports, Erasures
from services.member.domain.personal_data import DataExport, Erasure


def _ts(value) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def export_proto(export: DataExport, now) -> member_pb2.DataExport:
    state = "EXPIRED" if export.is_expired(now) else export.state
    return member_pb2.DataExport(
        export_id=export.id, state=member_pb2.DataExportState.Value(f"DATA_EXPORT_STATE_{state}"),
        steps_done=export.steps_done, steps_total=export.steps_total, created_at=_ts(export.created_at),
        ready_at=_ts(export.ready_at), expires_at=_ts(export.expires_at))


def erasure_state(erasure: Erasure) -> int:
    return member_pb2.ErasureState.Value(f"ERASURE_STATE_{erasure.state}")


class PersonalDataRpcs:
    data_exports: DataExports
    erasures: Erasures

    async def RequestDataExport(self, request, context):
        export, created = await self.data_exports.request(request.idempotency_key)
        return member_pb2.RequestDataExportResponse(export=export_proto(export, self.data_exports.clock()),
                                                    created=created)

    async def GetDataExport(self, request, context):
        export = await self.data_exports.get(request.export_id)
        return member_pb2.GetDataExportResponse(export=export_proto(export, self.data_exports.clock()))

    async def DownloadDataExport(self, request, context):
        export, document = await self.data_exports.download(request.export_id)
        return member_pb2.DownloadDataExportResponse(export=export_proto(export, self.data_exports.clock()),
                                                     document=document)

    async def EraseMe(self, request, context):
        erasure = await self.erasures.erase_me(request.idempotency_key)
        return member_pb2.EraseMeResponse(member_id=erasure.member_id, state=erasure_state(erasure))

    async def AcknowledgeErasure(self, request, context):
        erasure = await self.erasures.acknowledge(request.member_id, request.service)
        return member_pb2.AcknowledgeErasureResponse(state=erasure_state(erasure))
