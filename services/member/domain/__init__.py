"""Pure member rules: merchant config, tiers, points, login identity, passwords."""
