"""`make bench`: the suite's numbers, measured on this machine against a raw baseline
taken in the same run. See docs/performance.md."""
