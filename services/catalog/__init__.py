"""Catalog service: products, SKUs, prices, stock and reservations."""
