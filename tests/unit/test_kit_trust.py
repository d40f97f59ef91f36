"""The service-trust assertion: identity headers count only when a key holder vouches for them."""
from __future__ import annotations

import time

import jwt
import pytest
from hypothesis import given, strategies as st

from siyu_kit import context, trust
from siyu_kit.context import RequestContext
from siyu_kit.errors import Unauthenticated

KEYS = trust.parse_keys("new:" + "n" * 40 + ",old:" + "o" * 40)
OLD_ONLY = trust.parse_keys("old:" + "o" * 40)
OTHER = trust.parse_keys("new:" + "x" * 40)
STAFF = RequestContext(request_id="req_1", merchant_id="mch_a", caller_kind="staff", caller_id="stf_1",
                       roles=("OWNER",), client_address="10.0.0.9")


def _signed(pairs, key_set=KEYS, issuer="gateway", now=None):
    plain = tuple(pairs)
    return plain + ((trust.MD_ASSERTION, trust.sign(plain, issuer, key_set, now)),)


def _refused(metadata, key_set=KEYS, now=None) -> bool:
    try:
        trust.verify(metadata, key_set, now)
    except Unauthenticated as error:
        assert error.reason == "PEER_UNVERIFIED"
        return True
    return False


def test_a_signed_identity_is_accepted_with_its_issuer():
    md = _signed(STAFF.identity_pairs())
    assert trust.verify(md, KEYS) == "gateway"


def test_to_metadata_signs_what_it_sends():
    md = STAFF.to_metadata("order")
    assert dict(md)[trust.MD_ASSERTION]
    assert trust.verify(md) == "order"
    assert RequestContext.from_metadata(md).calling_service == "order"


def test_calls_without_identity_are_unaffected():
    assert trust.verify((), KEYS) == ""
    assert trust.verify(((context.MD_REQUEST_ID, "req_1"), ("user-agent", "grpc")), KEYS) == ""


@pytest.mark.parametrize("header", trust.IDENTITY_HEADERS)
def test_an_identity_header_without_an_assertion_is_refused(header):
    assert _refused(((header, "mch_a"),))


def test_every_bound_header_is_covered_by_the_digest():
    md = _signed(RequestContext(request_id="req_1", merchant_id="mch_a", channel="H5", caller_kind="member",
                                caller_id="mem_1", roles=("GUIDE",), calling_service="order",
                                client_address="1.2.3.4").identity_pairs("order"))
    assert not _refused(md)
    for key in trust.BOUND_HEADERS:
        tampered = tuple((k, v + "x" if k == key else v) for k, v in md)
        assert _refused(tampered), key
        dropped = tuple((k, v) for k, v in md if k != key)
        assert _refused(dropped), key
        added = md if key in dict(md) else md + ((key, "extra"),)
        assert added == md or _refused(added), key


@given(st.sampled_from(trust.IDENTITY_HEADERS), st.text(min_size=1, max_size=20))
def test_an_added_identity_header_breaks_the_assertion(header, value):
    md = _signed(((context.MD_REQUEST_ID, "req_1"),))
    assert _refused(md + ((header, value),))


def test_a_repeated_header_is_refused():
    md = _signed(STAFF.identity_pairs())
    assert _refused(md + ((context.MD_MERCHANT, "mch_a"),))
    assert _refused(md + ((trust.MD_ASSERTION, dict(md)[trust.MD_ASSERTION]),))


def test_an_expired_assertion_is_refused():
    past = time.time() - trust.TTL_S - trust.LEEWAY_S - 5
    assert _refused(_signed(STAFF.identity_pairs(), now=past))
    assert not _refused(_signed(STAFF.identity_pairs(), now=time.time() - trust.TTL_S + 5))


def test_the_cache_does_not_outlive_the_expiry():
    md = STAFF.to_metadata("tests")
    assert trust.verify(md) == "tests"
    with pytest.raises(Unauthenticated):
        trust.verify(md, now=time.time() + trust.TTL_S + trust.LEEWAY_S + 1)


def test_another_key_or_kid_is_refused_and_old_keys_still_verify():
    assert _refused(_signed(STAFF.identity_pairs(), key_set=OTHER))
    # Rotation: a process that signs with the old key is accepted while the old key is listed.
    assert not _refused(_signed(STAFF.identity_pairs(), key_set=OLD_ONLY))
    assert _refused(_signed(STAFF.identity_pairs(), key_set=KEYS), key_set=OLD_ONLY)


def test_tokens_that_are_not_ours_are_refused():
    pairs = STAFF.identity_pairs()
    dig = trust.digest(pairs)
    now = int(time.time())
    unsigned = jwt.encode({"iss": "x", "iat": now, "exp": now + 10, "dig": dig}, None, algorithm="none",
                          headers={"kid": "new"})
    long_lived = jwt.encode({"iss": "x", "iat": now, "exp": now + 3600, "dig": dig}, "n" * 40, algorithm="HS256",
                            headers={"kid": "new"})
    no_kid = jwt.encode({"iss": "x", "iat": now, "exp": now + 10, "dig": dig}, "n" * 40, algorithm="HS256")
    for token in (unsigned, long_lived, no_kid, "not-a-token", ""):
        assert _refused(pairs + ((trust.MD_ASSERTION, token),)), token


def test_keys_are_parsed_with_the_first_signing():
    assert KEYS.signing_kid == "new" and set(KEYS.by_kid) == {"new", "old"}
    assert trust.parse_keys("s" * 32).signing_kid == "k1"
    for bad in ("", "kid:short", ":" + "s" * 40):
        with pytest.raises(ValueError):
            trust.parse_keys(bad)
