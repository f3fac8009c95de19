"""The Label Studio connector: a stage's tasks shown in a Label Studio project, its annotations pulled back."""

from common.labelstudio.client import (
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioConfigError,
    LabelStudioUnreachableError,
)
from common.labelstudio.connector import Link, PullReport, PushReport, apply_annotation, link, pull, push
from common.labelstudio.settings import LabelStudioSettings

__all__ = [
    "LabelStudioAuthError",
    "LabelStudioClient",
    "LabelStudioConfigError",
    "LabelStudioSettings",
    "LabelStudioUnreachableError",
    "Link",
    "PullReport",
    "PushReport",
    "apply_annotation",
    "link",
    "pull",
    "push",
]
