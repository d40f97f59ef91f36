"""The member service: merchants, channel keys, staff users, members, tiers and points."""
