"""What the stand-in remembers while it runs: registered apps (appid → secret), codes not
yet used, and access tokens. In memory only: a restart forgets everything, as a test wants."""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

CODE_TTL_S = 300.0  # WeChat's login and phone-number codes last five minutes
ACCESS_TOKEN_TTL_S = 7200


@dataclass
class Code:
    kind: str          # "login" (wx.login), "oauth" (H5 web authorisation), "phone" (getPhoneNumber)
    appid: str
    openid: str
    unionid: str
    phone: str
    nickname: str
    expires_at: float
    used: bool = False


@dataclass
class Token:
    appid: str
    expires_at: float
    openid: str = ""   # set for an H5 user access token (sns/oauth2)
    unionid: str = ""
    nickname: str = ""


@dataclass
class StandinState:
    apps: dict[str, str] = field(default_factory=dict)
    codes: dict[str, Code] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    # one current client access token per appid, as /cgi-bin/stable_token keeps it
    stable: dict[str, str] = field(default_factory=dict)
    # phone → texts the sandbox SMS provider delivered, oldest first
    sms: dict[str, list[str]] = field(default_factory=dict)
    clock: callable = time.time

    def mint_code(self, kind: str, appid: str, openid: str, unionid: str, phone: str = "",
                  nickname: str = "", ttl_s: float = CODE_TTL_S) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = Code(kind, appid, openid, unionid, phone, nickname, self.clock() + ttl_s)
        return code

    def take_code(self, code: str, kind: str, appid: str) -> tuple[Code | None, str]:
        """The code's grant, spending it; or None and "invalid"/"used" when it cannot be spent."""
        grant = self.codes.get(code)
        if grant is None or grant.kind != kind or grant.appid != appid or grant.expires_at <= self.clock():
            return None, "invalid"
        if grant.used:
            return None, "used"
        grant.used = True
        return grant, ""

    def issue_token(self, appid: str, **user: str) -> tuple[str, int]:
        token = secrets.token_urlsafe(32)
        self.tokens[token] = Token(appid, self.clock() + ACCESS_TOKEN_TTL_S, **user)
        return token, ACCESS_TOKEN_TTL_S

    def token(self, value: str) -> tuple[Token | None, str]:
        found = self.tokens.get(value)
        if found is None:
            return None, "invalid"
        if found.expires_at <= self.clock():
            return None, "expired"
        return found, ""
