"""Storage, the catalog client and the sandbox payment provider."""
