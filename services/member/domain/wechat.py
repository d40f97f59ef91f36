"""WeChat identity for members: a merchant's WeChat app per channel, phone numbers as the
member service keeps them, and the sandbox SMS codes H5 members verify a phone with.

A merchant's app secret is a credential: it lives in memory only while a call to WeChat
needs it and is stored sealed; nothing shows it (only the appid and whether a secret is set).
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from siyu_kit.errors import Violations

# Channels whose login is WeChat's: the mini-program (wx.login) and H5 pages opened in
# WeChat (web authorisation). LIVE has no WeChat login of its own.
WECHAT_CHANNELS = ("MINI_PROGRAM", "H5")
_APPID = re.compile(r"^wx[A-Za-z0-9_]{6,30}$")
_SECRET = re.compile(r"^[A-Za-z0-9_]{16,64}$")
# A mainland China mobile number, as WeChat's purePhoneNumber gives it.
_PHONE = re.compile(r"^1[3-9][0-9]{9}$")

SMS_CODE_LENGTH = 6
SMS_CODE_TTL = timedelta(minutes=5)
SMS_MAX_ATTEMPTS = 5
# A new code for the same phone only after this long.
SMS_RESEND_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class WeChatApp:
    """A merchant's WeChat app on one channel. `secret` is the opened app secret."""
    merchant_id: str
    channel: str
    appid: str
    secret: str = field(repr=False)

    def __repr__(self) -> str:  # never the secret
        return f"WeChatApp({self.merchant_id}, {self.channel}, {self.appid})"


def check_app(v: Violations, channel: str, appid: str, secret: str) -> None:
    v.check(channel in WECHAT_CHANNELS, "channel", f"one of {', '.join(WECHAT_CHANNELS)}")
    v.check(bool(_APPID.fullmatch(appid)), "appid", "a WeChat appid: wx followed by 6..30 letters or digits")
    v.check(bool(_SECRET.fullmatch(secret)), "app_secret", "16..64 letters, digits or _")


def valid_phone(phone: str) -> bool:
    return bool(_PHONE.fullmatch(phone))


def phone_index(key: bytes, merchant_id: str, phone: str) -> str:
    """A keyed hash that finds a phone's member without storing the phone readable."""
    return hmac.new(key, f"{merchant_id}:{phone}".encode(), hashlib.sha256).hexdigest()


def code_hash(key: bytes, challenge_id: str, code: str) -> str:
    return hmac.new(key, f"sms:{challenge_id}:{code}".encode(), hashlib.sha256).hexdigest()


@dataclass
class SmsChallenge:
    """One SMS code sent to a phone for a member: kept hashed, tried at most
    SMS_MAX_ATTEMPTS times, valid until `expires_at`, used once."""
    id: str
    merchant_id: str
    member_id: str
    phone_index: str
    code_hash: str
    expires_at: datetime
    attempts: int = 0
    used: bool = False

    def try_code(self, given_hash: str, now: datetime) -> str:
        """"" when the code is right (the challenge is then used), else why not:
        EXPIRED, USED, TOO_MANY_ATTEMPTS or WRONG."""
        if self.used:
            return "USED"
        if now >= self.expires_at:
            return "EXPIRED"
        if self.attempts >= SMS_MAX_ATTEMPTS:
            return "TOO_MANY_ATTEMPTS"
        self.attempts += 1
        if not hmac.compare_digest(self.code_hash, given_hash):
            return "WRONG"
        self.used = True
        return ""

    def repeated_by(self, given_hash: str, now: datetime) -> bool:
        """Whether a try is a repeat of the one that used the challenge: the same code, still
        in time. A bind that stopped half-way after its code was accepted is then finished."""
        return self.used and now < self.expires_at and hmac.compare_digest(self.code_hash, given_hash)
