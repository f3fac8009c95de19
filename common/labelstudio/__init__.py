"""The Label Studio connector: a stage's tasks shown in a Label Studio project, its annotations pulled back."""

from common.labelstudio.client import (
    WEBHOOK_ACTIONS,
    WEBHOOK_SECRET_HEADER,
    LabelStudioAuthError,
    LabelStudioClient,
    LabelStudioConfigError,
    LabelStudioUnreachableError,
)
from common.labelstudio.connector import (
    AnnotationSource,
    Link,
    PullReport,
    PushReport,
    apply_annotation,
    find_link,
    get_link,
    link,
    pull,
    push,
)
from common.labelstudio.settings import LabelStudioSettings

__all__ = [
    "WEBHOOK_ACTIONS",
    "WEBHOOK_SECRET_HEADER",
    "AnnotationSource",
    "LabelStudioAuthError",
    "LabelStudioClient",
    "LabelStudioConfigError",
    "LabelStudioSettings",
    "LabelStudioUnreachableError",
    "Link",
    "PullReport",
    "PushReport",
    "apply_annotation",
    "find_link",
    "get_link",
    "link",
    "pull",
    "push",
]
