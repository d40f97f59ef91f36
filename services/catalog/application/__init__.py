"""Catalog use cases: validation, idempotency and orchestration of stock changes."""
