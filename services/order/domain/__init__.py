"""Pure order rules: pricing, order and payment state machines, merchant defaults."""
