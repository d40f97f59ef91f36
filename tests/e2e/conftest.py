"""End-to-end fixtures: a fresh merchant per module, seeded through the services' APIs,
and an HTTP client that calls the gateway as a front-end team would.

Seeding a merchant is a dozen calls across four services, so the tests of a module share
theirs: each test makes its own members, products and templates. A module whose tests
change what the next one would read (the merchant's settings, the owner's login) sets
`SHOP_PER_TEST = True` and gets a new merchant for every test."""
from __future__ import annotations


import pytest

from tests.support.shop import Shop, make_shop


@pytest.fixture(scope="module")
def _module_shops(stack) -> dict[str, Shop]:
    return {}


def _shop(request, stack, shops: dict[str, Shop], name: str) -> Shop:
    if getattr(request.module, "SHOP_PER_TEST", False):
        return make_shop(stack)
    if name not in shops:
        shops[name] = make_shop(stack)
    return shops[name]


@pytest.fixture
def shop(request, stack, _module_shops) -> Shop:
    return _shop(request, stack, _module_shops, "shop")


@pytest.fixture
def other_shop(request, stack, _module_shops) -> Shop:
    return _shop(request, stack, _module_shops, "other")
