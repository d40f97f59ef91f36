"""In-memory stand-ins for the member service's WeChat ports (WeChatApps, WeChatApi,
PhoneBook, SmsChallenges, SmsSender)."""
from __future__ import annotations

import copy

from services.member.domain.identity import InvalidLoginCode, ProviderIdentity
from services.member.domain.wechat import SmsChallenge, WeChatApp


class FakeWeChatApps:
    def __init__(self):
        self.items: dict[tuple[str, str], WeChatApp] = {}
        self.changed_by: list[str] = []

    async def get(self, merchant_id: str, channel: str) -> WeChatApp | None:
        return self.items.get((merchant_id, channel))

    async def put(self, app: WeChatApp, changed_by: str) -> None:
        self.items[(app.merchant_id, app.channel)] = app
        self.changed_by.append(changed_by)

    async def appids(self, merchant_id: str) -> dict[str, str]:
        return {c: a.appid for (m, c), a in self.items.items() if m == merchant_id}


class FakeWeChatApi:
    """WeChat's answers: codes registered with `login_code` / `phone_code`, each good once
    and for its own appid."""

    def __init__(self):
        self.codes: dict[str, tuple[str, str, object]] = {}  # code → (kind, appid, grant)
        self.calls: list[tuple[str, str]] = []

    def login_code(self, kind: str, appid: str, openid: str, unionid: str) -> str:
        code = f"code-{len(self.codes)}"
        self.codes[code] = (kind, appid, ProviderIdentity(unionid or f"app-{appid}-{openid}", openid))
        return code

    def phone_code(self, appid: str, phone: str) -> str:
        code = f"phone-{len(self.codes)}"
        self.codes[code] = ("phone", appid, phone)
        return code

    def _take(self, kind: str, app: WeChatApp, code: str):
        self.calls.append((kind, app.appid))
        found = self.codes.pop(code, None)
        if found is None or found[:2] != (kind, app.appid):
            raise InvalidLoginCode("the code is invalid or expired")
        return found[2]

    async def code2session(self, app: WeChatApp, code: str) -> ProviderIdentity:
        return self._take("login", app, code)

    async def web_authorise(self, app: WeChatApp, code: str) -> ProviderIdentity:
        return self._take("oauth", app, code)

    async def phone_number(self, app: WeChatApp, code: str) -> str:
        return self._take("phone", app, code)


class FakePhoneBook:
    def __init__(self):
        self.items: dict[tuple[str, str], str] = {}  # (merchant, phone) → member

    async def member_of(self, merchant_id: str, phone: str) -> str | None:
        return self.items.get((merchant_id, phone))

    async def phone_of(self, merchant_id: str, member_id: str) -> str:
        return next((p for (m, p), mem in self.items.items() if (m, mem) == (merchant_id, member_id)), "")

    async def phones_of(self, merchant_id: str, member_ids: list[str]) -> dict[str, str]:
        return {mem: p for (m, p), mem in self.items.items() if m == merchant_id and mem in member_ids}

    async def bind(self, merchant_id: str, phone: str, member_id: str) -> bool:
        if (merchant_id, phone) in self.items or await self.phone_of(merchant_id, member_id):
            return False
        self.items[(merchant_id, phone)] = member_id
        return True


class FakeSmsChallenges:
    def __init__(self):
        self.items: list[SmsChallenge] = []

    async def add(self, challenge: SmsChallenge) -> None:
        self.items.append(copy.deepcopy(challenge))

    async def latest(self, merchant_id: str, member_id: str, phone_index: str) -> SmsChallenge | None:
        found = [c for c in self.items if (c.merchant_id, c.member_id, c.phone_index) ==
                 (merchant_id, member_id, phone_index)]
        return copy.deepcopy(found[-1]) if found else None

    async def save(self, challenge: SmsChallenge) -> None:
        for i, c in enumerate(self.items):
            if c.id == challenge.id:
                self.items[i] = copy.deepcopy(challenge)


class FakeSms:
    def __init__(self):
        self.sent: list[tuple[str, str, str]] = []

    async def send(self, merchant_id: str, phone: str, text: str) -> None:
        self.sent.append((merchant_id, phone, text))

    def code_to(self, phone: str) -> str:
        text = [t for _, p, t in self.sent if p == phone][-1]
        return "".join(ch for ch in text if ch.isdigit())[:6]
