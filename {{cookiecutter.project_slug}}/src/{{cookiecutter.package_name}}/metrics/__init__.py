"""Prometheus metrics: HTTP by route template, PRSM calls, and `/metrics` to scrape them."""
