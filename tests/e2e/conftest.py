"""End-to-end fixtures: a fresh merchant per module, seeded through the services' APIs,
and an HTTP client that calls the gateway as a front-end team would."""
from __future__ import annotations


import pytest

from tests.support.shop import Shop, make_shop


@pytest.fixture
def shop(stack) -> Shop:
    return make_shop(stack)


@pytest.fixture
def other_shop(stack) -> Shop:
    return make_shop(stack)
