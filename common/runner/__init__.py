"""Stage handlers: register them once, run them sequentially (Runner) or through queues (QueueRunner)."""

from common.runner.context import ProjectInfo, StageInfo, TaskContext
from common.runner.dependencies import Depends, dep_asset
from common.runner.handlers import HandlerResult, StageAgent
from common.runner.labels import LabelRowEditor
from common.runner.queue_runner import QueueRunner
from common.runner.runner import Runner, StageStats

__all__ = [
    "Depends",
    "HandlerResult",
    "LabelRowEditor",
    "ProjectInfo",
    "QueueRunner",
    "Runner",
    "StageAgent",
    "StageInfo",
    "StageStats",
    "TaskContext",
    "dep_asset",
]
