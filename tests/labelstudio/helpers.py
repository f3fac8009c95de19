"""What the Label Studio tests share: a store whose images Label Studio serves, a box, an annotation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from common.enums import Role
from common.labelstudio import LabelStudioClient
from common.sdk import Client
from common.store import DataFile, DataUnit, Store
from common.workflow import load_workflow
from tests.labelstudio.server import LabelStudio

APPLES = Path(__file__).parents[1] / "fixtures" / "apples.yaml"


def labelled_store(
    tmp_path: Path, ls: LabelStudio, name: str, titles: list[str], size: tuple[int, int] = (200, 100)
) -> tuple[Store, str]:
    """A SQLite store with project ``name`` (Annotate 1 -> Review 1 -> Complete) and one image of ``size`` per title.

    The images lie under Label Studio's local-files root; its admin is an annotator-reviewer of the project.
    """
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    project = store.create_project(name, load_workflow(APPLES))
    units = []
    for t in titles:
        path = ls.files_root / name / f"{t}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, "green").save(path)
        units.append(
            DataUnit(
                data_hash=f"{name}-{t}",
                title=t,
                meta={"width": size[0], "height": size[1]},
                files={"image": DataFile(url=path.as_uri(), original_name=t, is_primary=True)},
            )
        )
    store.add_data_units(project.id, store.dataset(project.id, "fruit"), units)
    store.set_role(project.id, ls.email, Role.ANNOTATOR_REVIEWER)
    return store, project.id


def box(label: str) -> dict[str, Any]:
    """A RectangleLabels region as Label Studio stores it (percent of a 200x100 image)."""
    return {
        "id": "r1",
        "type": "rectanglelabels",
        "from_name": "label",
        "to_name": "image",
        "original_width": 200,
        "original_height": 100,
        "value": {"x": 10, "y": 20, "width": 50, "height": 40, "rectanglelabels": [label]},
    }


def choice(decision: str) -> dict[str, Any]:
    """The review stage's approve/reject Choices region."""
    return {"id": "c1", "type": "choices", "from_name": "review", "to_name": "image", "value": {"choices": [decision]}}


def annotate(ls: LabelStudio, ls_task: int, result: list[dict[str, Any]]) -> int:
    """What the annotator's Submit in the browser sends: the annotation, as the token's user."""
    c = LabelStudioClient(ls.url, ls.token)
    try:
        return int(c.post(f"/api/tasks/{ls_task}/annotations", {"result": result})["id"])
    finally:
        c.close()


def prelabel(store: Store, project: str, data_hash: str, coordinates: dict[str, float]) -> None:
    """Save a model's ``apple`` box (score 0.9, inference provenance) as the unit's label row."""
    sdk = Client(store).get_project(project)
    pre = {
        "id": "p1",
        "class_id": "apple",
        "type": "bbox",
        "score": 0.9,
        "coordinates": coordinates,
        "provenance": {"method": "inference", "pre_processor": "yolo"},
    }
    sdk.save_label_row(sdk.get_label_row(data_hash).model_copy(update={"objects": [pre]}))
