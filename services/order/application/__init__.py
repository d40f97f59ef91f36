"""Order use cases: validation, idempotency and orchestration."""
