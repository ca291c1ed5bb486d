"""Services that write visibility data: brands, answer analyses and per-run aggregates."""
