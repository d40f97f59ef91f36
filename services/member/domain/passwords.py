"""Staff passwords: scrypt with a random salt, compared in constant time."""
from __future__ import annotations

import hashlib
import hmac
import os

MIN_LENGTH = 8
_N, _R, _P, _DKLEN = 2 ** 14, 8, 1, 32


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r),
                                p=int(p), dklen=len(digest_hex) // 2)
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)


# Checked against when the user does not exist, so a miss costs as long as a wrong password.
DECOY_HASH = hash_password("decoy-password-never-matches")
