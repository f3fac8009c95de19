"""``annoflow demo``: a project of generated images, run through the demo agent by 2 worker processes.

Everything lives under ``<home>/demo/`` (wiped first): the images, the SQLite
store and the filesystem broker, so the demo never touches your own data.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from common.settings import Settings
from common.store import DataFile, DataUnit, ProjectRecord, Store
from common.workflow import load_workflow

__all__ = ["AGENTS", "AGENT_FILE", "WORKFLOW", "make_demo_images", "prepare_demo"]

AGENTS = "examples.demo_agent:runner"
WORKFLOW = Path(__file__).resolve().parent.parent / "examples" / "demo_workflow.yaml"
AGENT_FILE = WORKFLOW.parent / "demo_agent.py"  # the module AGENTS names, for the user to read


def make_demo_images(folder: Path, count: int = 24, seed: int = 7) -> list[Path]:
    """Write ``count`` 192x128 PNGs: dark scenes, colourful blobs on grey, and plain gradients."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:128, 0:192]
    paths = []
    for i in range(count):
        kind = ("dark", "blobs", "plain")[i % 3]
        if kind == "dark":
            img = rng.normal(25, 10, (128, 192, 3))
        elif kind == "plain":
            base = 90 + 120 * xx / 191
            img = np.stack([base, base * 0.95, base * 0.9], axis=2) + rng.normal(0, 4, (128, 192, 3))
        else:
            img = np.full((128, 192, 3), 150.0) + rng.normal(0, 4, (128, 192, 3))
            for _ in range(int(rng.integers(1, 4))):
                cy, cx, r = int(rng.integers(20, 108)), int(rng.integers(20, 172)), int(rng.integers(10, 22))
                colour = rng.choice([[230, 40, 40], [40, 200, 60], [40, 80, 230], [240, 200, 20]])
                img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = colour
        path = folder / f"{i:03d}_{kind}.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def prepare_demo(home: Path, count: int = 24) -> tuple[Settings, Store, ProjectRecord]:
    """Wipe ``home``, generate the images, create project ``demo`` with one task per image.

    The workers ``annoflow run`` starts read ANNOFLOW_HOME, so it is set for them here.
    """
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ["ANNOFLOW_HOME"] = str(home)
    os.environ.pop("ANNOFLOW_STORE_URL", None)
    os.environ.pop("ANNOFLOW_BROKER_URL", None)
    settings = Settings(home=home)
    store = Store.open(settings.resolved_store_url)
    project = store.create_project("demo", load_workflow(WORKFLOW), description="generated images, demo agent")
    dataset = store.dataset(project.id, "generated")
    units = [
        DataUnit(
            data_hash=str(uuid.uuid5(uuid.NAMESPACE_URL, p.name)),
            title=p.name,
            meta={"generator": "annoflow demo"},
            files={"image": DataFile(url=p.resolve().as_uri(), original_name=p.name, is_primary=True)},
        )
        for p in make_demo_images(home / "images", count)
    ]
    store.add_data_units(project.id, dataset, units)
    return settings, store, project
