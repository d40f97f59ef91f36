"""Bearer tokens: issued by the member service, verified locally by the gateway."""
from __future__ import annotations

import base64
import json

import pytest

from siyu_kit import auth
from siyu_kit.auth import TokenClaims
from siyu_kit.errors import Unauthenticated

SECRET = "test-secret-of-at-least-32-bytes-long!!"


def _reason(call) -> str:
    with pytest.raises(Unauthenticated) as caught:
        call()
    return caught.value.reason


def test_issue_then_verify_returns_the_claims():
    token = auth.issue(SECRET, TokenClaims("staff", "stf_1", "mch_1", roles=("OPERATOR",)), 60)
    claims = auth.verify(SECRET, token, "staff")
    assert (claims.kind, claims.subject, claims.merchant_id, claims.roles) == ("staff", "stf_1", "mch_1", ("OPERATOR",))
    assert claims.expires_at > 0


def test_an_expired_token_is_rejected():
    token = auth.issue(SECRET, TokenClaims("member", "mem_1", "mch_1"), -10)
    assert _reason(lambda: auth.verify(SECRET, token, "member")) == "TOKEN_EXPIRED"


def test_a_token_of_another_kind_is_rejected():
    refresh = auth.issue(SECRET, TokenClaims("refresh", "mem_1", "mch_1"), 60)
    assert _reason(lambda: auth.verify(SECRET, refresh, "member")) == "TOKEN_KIND"


def test_a_tampered_token_is_rejected():
    token = auth.issue(SECRET, TokenClaims("member", "mem_1", "mch_1"), 60)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["mid"] = "mch_other"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert _reason(lambda: auth.verify(SECRET, f"{header}.{forged}.{signature}", "member")) == "TOKEN_INVALID"


def test_a_token_signed_with_another_secret_or_garbage_is_rejected():
    token = auth.issue("another-secret-of-at-least-32-bytes!!", TokenClaims("member", "mem_1", "mch_1"), 60)
    assert _reason(lambda: auth.verify(SECRET, token, "member")) == "TOKEN_INVALID"
    assert _reason(lambda: auth.verify(SECRET, "not.a.token", "member")) == "TOKEN_INVALID"
    assert _reason(lambda: auth.verify(SECRET, "", "member")) == "TOKEN_INVALID"
