"""The order service: orders, their pricing, stock reservation and payments."""
