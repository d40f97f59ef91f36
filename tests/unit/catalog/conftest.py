"""Catalog use cases on in-memory fakes."""
from __future__ import annotations

import pytest

from tests.fakes.catalog import catalog


@pytest.fixture
def shop():
    return catalog()
