"""Catalog storage (mongoengine documents and repositories)."""
