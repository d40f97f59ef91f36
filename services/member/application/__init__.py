"""Member use cases: validation, idempotency and orchestration over the repositories."""
