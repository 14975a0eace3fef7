"""Counters and snapshots: what sources and sinks count, and what a scrape reads of them."""
