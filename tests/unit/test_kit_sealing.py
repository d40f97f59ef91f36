"""Encryption at rest: values open only with their key and their context."""
from __future__ import annotations

import base64

import pytest

from siyu_kit.sealing import Sealer, SealError, new_key


def test_a_sealed_value_opens_with_its_context_and_reads_nothing_in_clear():
    sealer = Sealer.from_setting(new_key())
    sealed = sealer.seal("13800138000", "mch_1")
    assert "13800138000" not in sealed and sealer.seal("13800138000", "mch_1") != sealed
    assert sealer.open(sealed, "mch_1") == "13800138000"
    with pytest.raises(SealError):
        sealer.open(sealed, "mch_2")


def test_a_tampered_or_foreign_value_does_not_open():
    sealer = Sealer.from_setting(new_key())
    sealed = sealer.seal("secret", "ctx")
    head, tail = sealed.rsplit(".", 1)
    box = bytearray(base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4)))
    box[-1] ^= 0x01  # one flipped bit, always a real change (a rewritten base64 tail can equal the original)
    tampered = base64.urlsafe_b64encode(bytes(box)).decode().rstrip("=")
    with pytest.raises(SealError):
        sealer.open(f"{head}.{tampered}", "ctx")
    with pytest.raises(SealError):
        Sealer.from_setting(new_key()).open(sealed, "ctx")
    with pytest.raises(SealError):
        sealer.open("not-sealed", "ctx")


def test_rotation_keeps_old_values_readable():
    old = new_key()
    before = Sealer.from_setting(f"k1:{old}")
    sealed = before.seal("v", "c")
    after = Sealer.from_setting(f"k2:{new_key()},k1:{old}")
    assert after.current == "k2" and after.open(sealed, "c") == "v"
    assert after.seal("v", "c").split(".")[1] == "k2"


def test_a_key_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError):
        Sealer.from_setting("k1:c2hvcnQ")
