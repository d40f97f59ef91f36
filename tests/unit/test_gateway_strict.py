"""Strict HTTP/JSON input: nesting, numbers, enums, times, null, duplicate keys — each
refused with a sentence a front end can show, never Python's own wording."""
from __future__ import annotations

import pytest
from google.protobuf import json_format
from siyu.catalog.v1 import catalog_pb2
from siyu.order.v1 import order_pb2

from gateway import strict
from gateway.errors import ApiError

PLACE = order_pb2.PlaceOrderRequest.DESCRIPTOR
INTERNALS = ("int()", "literal", "Couldn't", "Failed to parse", "has type", "Error", "base 10")


def violations(descriptor, data) -> dict[str, str]:
    _, found = strict.check_message(descriptor, data)
    return {v.field: v.description for v in found}


def test_depth_is_counted_outside_strings():
    assert strict.nesting_depth(b'{"a": [[1], {"b": {}}]}') == 4
    assert strict.nesting_depth(b'{"a": "[[[[{{{{", "b": "\\"[["}') == 1
    assert strict.nesting_depth(b"1") == 0


@pytest.mark.parametrize("raw", [b"[" * 1000 + b"]" * 1000, b'{"a":' * 33 + b"1" + b"}" * 33,
                                 b"[" * 100000])  # the last is not even valid JSON
def test_deep_bodies_are_refused_before_parsing(raw):
    with pytest.raises(ApiError) as caught:
        strict.load_body(raw)
    assert caught.value.reason == "BODY_TOO_DEEP" and caught.value.http_status == 400


def test_nesting_up_to_the_limit_parses():
    raw = b'{"a":' * 31 + b"[1]" + b"}" * 31
    assert strict.nesting_depth(raw) == strict.MAX_DEPTH
    assert strict.load_body(raw)


@pytest.mark.parametrize("raw,description", [
    (b'{"a": 1, "a": 2}', "the key 'a' appears twice in one object"),
    (b'{"a": NaN}', "not valid JSON"),
    (b'{"a": Infinity}', "not valid JSON"),
    (b'{"a": ', "not valid JSON"),
    (b"\xff\xfe{", "not valid JSON"),
    ('{"code": "x"}'.encode("utf-16"), "not valid JSON"),
    (b'\xef\xbb\xbf{"code": "x"}', "not valid JSON"),
    (b'{"code": "\xc0\xaf"}', "not valid JSON"),
])
def test_malformed_bodies(raw, description):
    with pytest.raises(ApiError) as caught:
        strict.load_body(raw)
    assert caught.value.reason == "MALFORMED_JSON"
    assert [(v.field, v.description) for v in caught.value.violations] == [("body", description)]


def test_too_large_is_413():
    error = strict.too_large()
    assert (error.http_status, error.code, error.reason) == (413, "PAYLOAD_TOO_LARGE", "BODY_TOO_LARGE")


@pytest.mark.parametrize("quantity", ["１", "+1", " 1", "1 ", "\t1", "1_000", "٣", "1e3", "0x10", "", 1.5, True,
                                      [1], {"n": 1}])
def test_integers_take_only_ascii_digits(quantity):
    found = violations(PLACE, {"lines": [{"sku_id": "sku_1", "quantity": quantity}]})
    assert list(found) == ["lines[0].quantity"]
    assert found["lines[0].quantity"].startswith("must be an integer")
    assert not any(word in found["lines[0].quantity"] for word in INTERNALS)


@pytest.mark.parametrize("quantity", [3, 3.0, "3", "-3", "9223372036854775807"])
def test_integers_in_range_pass_and_convert(quantity):
    data, found = strict.check_message(PLACE, {"lines": [{"sku_id": "sku_1", "quantity": quantity}]})
    assert found == []
    assert json_format.ParseDict(data, order_pb2.PlaceOrderRequest()).lines[0].quantity == int(quantity)


@pytest.mark.parametrize("value", ["9223372036854775808", -9223372036854775809, "1" * 5000])
def test_int64_out_of_range(value):
    found = violations(PLACE, {"lines": [{"sku_id": "sku_1", "quantity": value}]})
    assert found == {"lines[0].quantity": "must be an integer from -9223372036854775808 to 9223372036854775807"}


def test_int32_range_from_a_query_string():
    found = violations(catalog_pb2.ListProductsRequest.DESCRIPTOR, {"page_size": "2147483648"})
    assert found == {"page_size": "must be an integer from -2147483648 to 2147483647"}


def test_enums_by_name_only():
    assert violations(PLACE, {"attribution": {"channel": "CHANNEL_H5"}}) == {}
    for bad in (2, "2", "２", "channel_h5", True):
        found = violations(PLACE, {"attribution": {"channel": bad}})
        assert found["attribution.channel"].startswith("must be one of CHANNEL_UNSPECIFIED, ")


def test_booleans_only_true_or_false():
    assert violations(PLACE, {"remove_from_cart": True}) == {}
    for bad in ("true", 1, 0, "1", None):
        assert "remove_from_cart" in violations(PLACE, {"remove_from_cart": bad})


@pytest.mark.parametrize("data,field", [
    ({"remark": None}, "remark"),
    ({"attribution": None}, "attribution"),
    ({"lines": None}, "lines"),
    ({"lines": [None]}, "lines[0]"),
    ({"lines": [{"sku_id": None, "quantity": 1}]}, "lines[0].sku_id"),
])
def test_null_is_refused_never_taken_as_unset(data, field):
    found = violations(PLACE, data)
    assert list(found) == [field]
    assert found[field].startswith("must not be null")


@pytest.mark.parametrize("data,field,description", [
    ({"remark": 12}, "remark", "must be a string"),
    ({"remark": "\ud800"}, "remark", "must be valid Unicode text"),
    ({"lines": {"sku_id": "x"}}, "lines", "must be an array"),
    ({"attribution": "x"}, "attribution", "must be an object"),
    ({"merchant_id": "mch_evil"}, "merchant_id", "unknown field"),
    ({"lines": [{"skuId": "a", "sku_id": "b"}]}, "lines[0].sku_id", "given twice (as skuId and sku_id)"),
])
def test_wrong_shapes_name_the_field(data, field, description):
    assert violations(PLACE, data) == {field: description}


def test_violations_are_capped():
    lines = [{"sku_id": "s", "quantity": "x"} for _ in range(500)]
    assert len(violations(PLACE, {"lines": lines})) == strict.MAX_VIOLATIONS


@pytest.mark.parametrize("text,utc", [
    ("2026-05-01T10:00:00+08:00", "2026-05-01T02:00:00Z"),
    ("2026-05-01T10:00:00Z", "2026-05-01T10:00:00Z"),
    ("2026-05-01T10:00:00.250-05:30", "2026-05-01T15:30:00.250Z"),
    ("2026-05-01T10:00:00.123456789+23:59", "2026-04-30T10:01:00.123456789Z"),
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
])
def test_rfc3339_times_are_rewritten_in_utc(text, utc):
    flash = catalog_pb2.CreateFlashSaleRequest.DESCRIPTOR
    data, found = strict.check_message(flash, {"starts_at": text})
    assert found == [] and data["starts_at"] == utc
    parsed = json_format.ParseDict(data, catalog_pb2.CreateFlashSaleRequest()).starts_at
    assert parsed.ToJsonString()[:19] == utc[:19]


@pytest.mark.parametrize("text,description", [
    ("2026-05-01T10:00:00+24:00", "has a time-zone offset beyond ±23:59"),
    ("2026-05-01T10:00:00-23:60", "has a time-zone offset beyond ±23:59"),
    ("2026-05-01T10:00:00+99:00", "has a time-zone offset beyond ±23:59"),
    ("2026-02-30T10:00:00Z", "is not a real date and time"),
    ("2026-05-01T24:00:00Z", "is not a real date and time"),
    ("0001-01-01T00:00:00+00:01", "is outside the years 0001 to 9999"),
    ("9999-12-31T23:59:59-00:01", "is outside the years 0001 to 9999"),
    ("２026-05-01T10:00:00Z", "must be an RFC 3339 time such as 2026-05-01T10:00:00+08:00"),
    ("2026-05-01 10:00:00Z", "must be an RFC 3339 time such as 2026-05-01T10:00:00+08:00"),
    ("2026-05-01T10:00:00", "must be an RFC 3339 time such as 2026-05-01T10:00:00+08:00"),
    ("2026-05-01T10:00:00+0800", "must be an RFC 3339 time such as 2026-05-01T10:00:00+08:00"),
    ("2026-05-01T10:00:00.1234567891Z", "must be an RFC 3339 time such as 2026-05-01T10:00:00+08:00"),
    (1777600000, "must be an RFC 3339 time such as 2026-05-01T10:00:00+08:00"),
])
def test_bad_times_are_refused_cleanly(text, description):
    found = violations(catalog_pb2.CreateFlashSaleRequest.DESCRIPTOR, {"starts_at": text})
    assert found == {"starts_at": description}


def test_nested_times_are_checked_too():
    found = violations(catalog_pb2.UpsertProductRequest.DESCRIPTOR,
                       {"skus": [{"limited_time_price": {"ends_at": "2026-05-01T10:00:00+24:00"}}]})
    assert list(found) == ["skus[0].limited_time_price.ends_at"]


def test_map_values_and_keys():
    sku = {"code": "s", "attributes": {"尺码": "M"}}
    assert violations(catalog_pb2.UpsertProductRequest.DESCRIPTOR, {"skus": [sku]}) == {}
    found = violations(catalog_pb2.UpsertProductRequest.DESCRIPTOR, {"skus": [{"attributes": {"尺码": 1}}]})
    assert found == {"skus[0].attributes['尺码']": "must be a string"}
