"""Identity providers and password hashing as the use cases call them: off the event
loop, since a provider may call out over the network and scrypt takes tens of
milliseconds."""
from __future__ import annotations

from services.member.domain.identity import IdentityProvider, ProviderIdentity
from services.member.domain.passwords import hash_password, verify_password
from siyu_kit.db import run_sync


class ThreadedProvider:
    """A blocking identity provider, run in the worker pool."""

    def __init__(self, provider: IdentityProvider):
        self.provider = provider
        self.name = provider.name

    async def exchange(self, code: str, channel: str) -> ProviderIdentity:
        return await run_sync(self.provider.exchange, code, channel)


class ScryptPasswords:
    async def hash(self, password: str) -> str:
        return await run_sync(hash_password, password)

    async def verify(self, password: str, stored: str) -> bool:
        return await run_sync(verify_password, password, stored)
