"""Observe: the status view, the Prometheus metrics, the queue depths."""

__all__: list[str] = []
