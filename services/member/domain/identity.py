"""Member login: the identity-provider interface and the sandbox provider.

A provider turns the code a channel's front end obtained (wx.login) into the person's
unionid, shared by all of a merchant's channels, and the channel's own openid.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

SANDBOX_PREFIX = "sandbox:"
_UNIONID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class InvalidLoginCode(ValueError):
    """The provider does not accept the code."""


@dataclass(frozen=True)
class ProviderIdentity:
    unionid: str
    openid: str


class IdentityProvider(Protocol):
    name: str

    def exchange(self, code: str, channel: str) -> ProviderIdentity: ...


def sandbox_openid(channel: str, unionid: str) -> str:
    return "sbx-" + hashlib.sha256((channel + unionid).encode()).hexdigest()[:24]


class SandboxProvider:
    """Development and tests: "sandbox:<unionid>" logs in as that unionid."""

    name = "sandbox"

    def exchange(self, code: str, channel: str) -> ProviderIdentity:
        if not code.startswith(SANDBOX_PREFIX):
            raise InvalidLoginCode('the sandbox accepts only "sandbox:<unionid>"')
        unionid = code[len(SANDBOX_PREFIX):]
        if not _UNIONID.match(unionid):
            raise InvalidLoginCode("the unionid must be 1..64 characters of A-Z a-z 0-9 _ -")
        return ProviderIdentity(unionid=unionid, openid=sandbox_openid(channel, unionid))
