"""The active-learning test's runner: a ToTask inference handler on the agent stage, routing by confidence.

Worker processes import this module; the fake model server's URL comes from the
test through ANNOFLOW_TEST_MODEL_URL (the producer side only needs the stage).
"""

from __future__ import annotations

import os

from common.runner import QueueRunner
from common.totask.agents import totask_stage

runner = QueueRunner(project="al")

totask_stage(
    runner,
    "Pre-label",
    {
        "method": "inference",
        "pre_processor": os.environ.get("ANNOFLOW_TEST_MODEL_URL", "http://127.0.0.1:9"),
        "pre_processor_params": {"confidence_threshold": 0.5, "model_config": {"batch_size": 4}},
        # Sure predictions skip people entirely; the rest go to annotators with the pre-labels.
        "route": {"threshold": 0.9, "high": "confident", "low": "uncertain"},
    },
)
