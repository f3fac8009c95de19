"""annoflow's control plane, one subpackage a role: enumerate, apply, totask, observe.

``embedded`` runs enumerate and apply in one process beside real worker processes;
``lineage`` records what a run read and wrote; ``importer`` reads data into a project.
"""

__all__: list[str] = []
