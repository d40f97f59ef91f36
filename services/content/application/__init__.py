"""Use cases: validation, upserts by code, funnel recording and reading."""
