"""WeChat Pay API v3 cryptography, as WeChat documents it:

- requests are signed SHA256withRSA with the merchant's private key over
  "METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n" and carried in the Authorization header
  `WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"`;
- `wx.requestPayment` is signed over "appId\\ntimeStamp\\nnonceStr\\npackage\\n";
- responses and notifications are signed by WeChat over "timestamp\\nnonce\\nbody\\n" and
  verified with the platform public key named by Wechatpay-Serial;
- a notification's resource is AEAD_AES_256_GCM with the API v3 key, its nonce and
  associated data.

The primitives come from wechatpayv3's helpers; nothing here does I/O."""
from __future__ import annotations

import base64
import json
import secrets
import string
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from wechatpayv3 import utils as wx

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
_NONCE_CHARS = string.ascii_uppercase + string.digits


class BadKey(ValueError):
    """A key that does not load (not PEM, wrong kind)."""


def new_nonce(length: int = 32) -> str:
    return "".join(secrets.choice(_NONCE_CHARS) for _ in range(length))


# Loading an RSA private key checks it (tens of milliseconds); a merchant's key is loaded
# once per process and kept, keyed by its PEM, so a rotated key is simply another entry.
@lru_cache(maxsize=256)
def private_key(pem: str):
    try:
        return wx.load_private_key(pem)
    except Exception as exc:  # noqa: BLE001 - the library raises a bare Exception
        raise BadKey("the merchant private key does not load") from exc


@lru_cache(maxsize=256)
def public_key(pem: str):
    try:
        return wx.load_public_key(pem)
    except Exception as exc:  # noqa: BLE001 - the library raises a bare Exception
        raise BadKey("the platform public key does not load") from exc


def sign(private_key_pem: str, message: str) -> str:
    """Base64 SHA256withRSA (PKCS#1 v1.5) of the message."""
    return wx.rsa_sign(private_key(private_key_pem), message)


def verify(public_key_pem: str, message: str, signature: str) -> bool:
    """True when `signature` is the platform's signature of `message`."""
    try:
        signature_bytes = base64.b64decode(signature, validate=True)
        public_key(public_key_pem).verify(signature_bytes, message.encode(), PKCS1v15(), SHA256())
        return True
    except Exception:  # noqa: BLE001 - any failure is "does not verify"
        return False


def request_message(method: str, url: str, timestamp: str, nonce: str, body: str) -> str:
    """What a merchant request's signature covers; `url` is the path with its query."""
    return f"{method}\n{url}\n{timestamp}\n{nonce}\n{body}\n"


def authorization(*, mchid: str, serial_no: str, private_key_pem: str, method: str, url: str, body: str,
                  timestamp: str, nonce: str) -> str:
    signature = sign(private_key_pem, request_message(method, url, timestamp, nonce, body))
    return (f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{serial_no}"')


def parse_authorization(header: str) -> dict[str, str]:
    """The fields of an Authorization header (empty when it is not WeChat Pay's scheme)."""
    scheme, _, rest = (header or "").partition(" ")
    if scheme != SCHEMA:
        return {}
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep and len(value) >= 2 and value[0] == value[-1] == '"':
            fields[name] = value[1:-1]
    return fields


def message_of_response(timestamp: str, nonce: str, body: str) -> str:
    """What WeChat's signature on a response or a notification covers."""
    return f"{timestamp}\n{nonce}\n{body}\n"


def verify_platform(public_key_pem: str, timestamp: str, nonce: str, body: str, signature: str) -> bool:
    try:
        return wx.rsa_verify(timestamp, nonce, body, signature, public_key(public_key_pem))
    except Exception:  # noqa: BLE001 - a key that does not load verifies nothing
        return False


def jsapi_message(app_id: str, time_stamp: str, nonce_str: str, package: str) -> str:
    return f"{app_id}\n{time_stamp}\n{nonce_str}\n{package}\n"


def jsapi_params(*, app_id: str, prepay_id: str, private_key_pem: str, time_stamp: str,
                 nonce_str: str) -> dict[str, str]:
    """Exactly what `wx.requestPayment` takes."""
    package = f"prepay_id={prepay_id}"
    return {"timeStamp": time_stamp, "nonceStr": nonce_str, "package": package, "signType": "RSA",
            "paySign": sign(private_key_pem, jsapi_message(app_id, time_stamp, nonce_str, package))}


def decrypt(api_v3_key: str, nonce: str, ciphertext: str, associated_data: str) -> str | None:
    """The plaintext of an AEAD_AES_256_GCM resource, or None when it does not open
    (wrong key, tampered ciphertext, nonce or associated data)."""
    if len(api_v3_key.encode()) != 32:
        return None
    try:
        return wx.aes_decrypt(nonce, ciphertext, associated_data, api_v3_key)
    except (InvalidTag, ValueError, TypeError):
        return None


def encrypt(api_v3_key: str, nonce: str, plaintext: str, associated_data: str) -> str:
    """The inverse of `decrypt` (what WeChat does to a notification's resource)."""
    box = AESGCM(api_v3_key.encode()).encrypt(nonce.encode(), plaintext.encode(), associated_data.encode())
    return base64.b64encode(box).decode()


def dumps(data: dict) -> str:
    """The compact JSON body that is both sent and signed."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
