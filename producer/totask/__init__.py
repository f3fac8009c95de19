"""ToTask runs: check the parameters, start method workers, claim and publish, apply, record the run."""

__all__: list[str] = []
