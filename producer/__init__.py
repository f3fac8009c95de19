"""annoflow's control plane: enumerate tasks, publish them, apply results; the CLI."""

__all__: list[str] = []
