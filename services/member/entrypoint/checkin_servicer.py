"""The check-in RPCs of MemberService: proto in, use case, proto out."""
from __future__ import annotations

from siyu.member.v1 import member_pb2

from services.member.adapters import checkin_messages as out
from services.member.application.checkin import CheckIns
from services.member.domain.checkin import day_key


class CheckInRpcs:
    checkin: CheckIns

    async def CheckIn(self, request, context):
        check_in, repeat = await self.checkin.check_in()
        return member_pb2.CheckInResponse(check_in=out.check_in_proto(check_in), repeat=repeat)

    async def GetCheckInCalendar(self, request, context):
        page = await self.checkin.calendar(request.month)
        return member_pb2.GetCheckInCalendarResponse(
            month=page.month, check_ins=[out.check_in_proto(c) for c in page.check_ins], today=day_key(page.today),
            checked_in_today=page.checked_in_today, streak=page.streak, today_points=page.today_points,
            tomorrow_points=page.tomorrow_points, settings=out.settings_proto(page.settings))

    async def GetCheckInSettings(self, request, context):
        settings, version = await self.checkin.settings()
        return member_pb2.GetCheckInSettingsResponse(settings=out.settings_proto(settings), version=version)

    async def UpdateCheckInSettings(self, request, context):
        settings, version = await self.checkin.update_settings(out.settings_of(request.settings),
                                                               request.expected_version)
        return member_pb2.UpdateCheckInSettingsResponse(settings=out.settings_proto(settings), version=version)
