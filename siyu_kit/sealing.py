"""Encryption at rest for what must never be stored readable: phone numbers, payment
credentials. AES-256-GCM with a random 96-bit nonce per value; the merchant id (or another
context) is bound in as associated data, so a value copied to another merchant's document
does not open. The key comes from settings (SIYU_DATA_KEY, 32 bytes, base64); `kid` names
it, so keys can be rotated while old values still open."""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"


class SealError(ValueError):
    """A sealed value that does not open: another key, another context, or tampered."""


def new_key() -> str:
    """A fresh key, as SIYU_DATA_KEY expects it."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@dataclass(frozen=True)
class Sealer:
    """Seals and opens short strings. `keys` maps key ids to 32-byte keys; new values are
    sealed with `current`."""
    keys: dict[str, bytes]
    current: str

    @classmethod
    def from_setting(cls, value: str) -> "Sealer":
        """SIYU_DATA_KEY: `kid:base64key[,kid:base64key…]`, the first one current, or a bare
        base64 key (kid `k1`)."""
        keys: dict[str, bytes] = {}
        for part in (p.strip() for p in value.split(",") if p.strip()):
            kid, _, raw = part.rpartition(":")
            key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            if len(key) != 32:
                raise ValueError("SIYU_DATA_KEY must hold 32-byte keys (base64)")
            keys[kid or "k1"] = key
        if not keys:
            raise ValueError("SIYU_DATA_KEY is empty")
        return cls(keys, next(iter(keys)))

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        box = AESGCM(self.keys[self.current]).encrypt(nonce, plaintext.encode(), context.encode())
        return ".".join((VERSION, self.current, _b64(nonce), _b64(box)))

    def open(self, sealed: str, context: str) -> str:
        try:
            version, kid, nonce, box = sealed.split(".")
            if version != VERSION or kid not in self.keys:
                raise SealError("sealed with an unknown key")
            return AESGCM(self.keys[kid]).decrypt(_unb64(nonce), _unb64(box), context.encode()).decode()
        except SealError:
            raise
        except Exception as exc:  # noqa: BLE001 - malformed or tampered: one error for all
            raise SealError("the sealed value does not open") from exc


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
