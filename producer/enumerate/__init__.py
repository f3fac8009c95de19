"""Enumerate: claim a stage's tasks, build their specs, publish batches; the in-flight ledger and outage backoff."""

__all__: list[str] = []
