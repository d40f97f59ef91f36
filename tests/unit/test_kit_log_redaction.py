"""The log processor that keeps personal data and credentials out of every log line."""
from __future__ import annotations

import json

from siyu_kit.context import RequestContext
from siyu_kit.logging import redact_personal_data

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtZW1fMSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def test_fields_named_for_personal_data_or_credentials_are_masked():
    event = redact_personal_data(None, "info", {
        "event": "x", "phone": "13912345678", "receiver_phone": "13700001111", "address": "文三路 90 号",
        "detail_address": {"line": "x"}, "access_token": TOKEN, "authorization": f"Bearer {TOKEN}",
        "password": "p", "app_secret": "s", "merchant_id": "mch_1", "client_address": "10.0.0.1",
        "request_id": "req_1"})
    assert event["phone"] == "139****5678" and event["receiver_phone"] == "137****1111"
    assert {event[k] for k in ("address", "detail_address", "access_token", "authorization", "password",
                               "app_secret")} == {"[redacted]"}
    assert (event["merchant_id"], event["client_address"], event["request_id"]) == ("mch_1", "10.0.0.1", "req_1")


def test_phones_and_tokens_inside_other_text_are_masked():
    md = RequestContext(merchant_id="mch_1", caller_kind="member", caller_id="mem_1").to_metadata("order")
    event = redact_personal_data(None, "info", {
        "event": "rpc.rejected", "message": "phone 13912345678 or +8613912345678 is taken",
        "error": repr(md), "nested": {"items": [f"token {TOKEN}"]}, "count": 13912345678})
    text = json.dumps(event, ensure_ascii=False)
    assert "13912345678" not in text.replace('"count": 13912345678', "") and "139****5678" in text
    assert "eyJ" not in text and "[token]" in text
    # Longer digit runs (ids, amounts) are not phones.
    assert redact_personal_data(None, "info", {"event": "x", "n": "order 123913912345678"})["n"].endswith("345678")
