"""Staff read and change the merchant's order settings, against in-memory ports."""
from __future__ import annotations

import pytest

from siyu_kit.errors import Conflict, InvalidArgument, PermissionDenied

from services.order.domain.settings import DEFAULTS, OrderSettings, ThresholdReduction


async def test_defaults_until_changed_then_each_change_bumps_the_version(world):
    with world.as_staff("OPERATOR"):
        assert await world.settings_cases.get() == DEFAULTS
    with world.as_staff("OWNER"):
        saved = await world.settings_cases.update(OrderSettings(unpaid_expiry_s=60), {}, 0)
        assert (saved.unpaid_expiry_s, saved.version) == (60, 1)
        again = await world.settings_cases.update(OrderSettings(unpaid_expiry_s=90), {}, 1)
        assert again.version == 2
        assert await world.settings_cases.get() == again


async def test_an_expected_version_that_is_not_current_is_refused(world):
    with world.as_staff("OWNER"):
        await world.settings_cases.update(OrderSettings(), {}, 0)
        with pytest.raises(Conflict) as stale:
            await world.settings_cases.update(OrderSettings(unpaid_expiry_s=60), {}, 5)
        assert stale.value.reason == "VERSION_CONFLICT"
        world.settings.stale_saves = 1
        with pytest.raises(Conflict) as lost:
            await world.settings_cases.update(OrderSettings(unpaid_expiry_s=60), {}, 1)
        assert lost.value.reason == "VERSION_CONFLICT"


async def test_without_an_expected_version_a_lost_race_is_made_again_then_given_up(world):
    with world.as_staff("OWNER"):
        world.settings.stale_saves = 2
        assert (await world.settings_cases.update(OrderSettings(), {}, 0)).version == 1
        world.settings.stale_saves = 3
        with pytest.raises(Conflict) as gave_up:
            await world.settings_cases.update(OrderSettings(), {}, 0)
    assert gave_up.value.reason == "CONCURRENT_UPDATE"
    assert gave_up.value.message == "the order settings changed concurrently; try again"


async def test_out_of_bounds_values_and_foreign_currencies_are_refused(world):
    wanted = OrderSettings(unpaid_expiry_s=0, threshold_reductions=(ThresholdReduction(100, 100),))
    with world.as_staff("OWNER"):
        with pytest.raises(InvalidArgument) as bad:
            await world.settings_cases.update(wanted, {"settings.shipping_fee": "USD"}, -1)
    fields = {v.field for v in bad.value.violations}
    assert {"settings.unpaid_expiry_seconds", "settings.threshold_reductions[0].reduction",
            "settings.shipping_fee", "expected_version"} <= fields
    assert world.merchant_id not in world.settings.by_merchant


async def test_only_the_owner_changes_them(world):
    with world.as_staff("OPERATOR"):
        with pytest.raises(PermissionDenied):
            await world.settings_cases.update(OrderSettings(), {}, 0)
    with world.as_staff("FINANCE"):
        with pytest.raises(PermissionDenied):
            await world.settings_cases.get()
