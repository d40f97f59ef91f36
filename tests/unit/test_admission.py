"""Deadlines passed on: a call made while serving another gets at most what is left of
the served call's deadline as its timeout."""
from __future__ import annotations

import time

from siyu_kit import admission
from siyu_kit.clients import outgoing_timeout


def test_an_outgoing_call_gets_what_is_left_of_the_served_calls_deadline():
    assert outgoing_timeout(5.0) == 5.0 and outgoing_timeout(None) is None
    token = admission._deadline.set(time.monotonic() + 2.0)
    try:
        assert 1.0 < outgoing_timeout(5.0) <= 2.0
        assert 1.0 < outgoing_timeout(None) <= 2.0
        assert outgoing_timeout(0.5) == 0.5  # a shorter timeout of its own stays
    finally:
        admission._deadline.reset(token)
    token = admission._deadline.set(time.monotonic() - 1.0)
    try:
        assert outgoing_timeout(5.0) == 0.001  # already past: fails at once rather than never
    finally:
        admission._deadline.reset(token)
