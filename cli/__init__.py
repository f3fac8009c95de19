"""The ``annoflow`` command: thin Typer groups over the roles, rendered with rich (entry: :func:`cli.main.main`)."""

__all__: list[str] = []
