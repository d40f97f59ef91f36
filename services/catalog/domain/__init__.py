"""Pure catalog rules: search terms, product merging, reservation states, the stock ledger."""
