"""mongoengine documents and the repositories over them."""
