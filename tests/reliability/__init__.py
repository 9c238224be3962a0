"""Heavy reliability suites: the payout jobs raced and killed as real processes
(docs/reliability.md). Marked ``heavy``: CI runs them once, against the
machine's servers."""
