"""Apply: consume the results queue, apply each message in one transaction; dead letters and apply stats."""

__all__: list[str] = []
