"""annoflow's contract and domain: workflows, the store, the task lifecycle, wire models.

``common`` imports neither ``producer`` nor ``workers``.
"""

from common.errors import AnnoflowError
from common.workflow import Workflow, load_workflow, parse_workflow

__all__ = ["AnnoflowError", "Workflow", "load_workflow", "parse_workflow"]
