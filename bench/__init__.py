"""Every ``annoflow bench`` measurement, its probes and its agents; product code never imports it."""

__all__: list[str] = []
