"""annoflow's data plane: Celery tasks that run stage handlers and ToTask strategies."""

__all__: list[str] = []
