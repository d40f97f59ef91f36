"""Storage of the member service (mongoengine documents and repositories)."""
