"""Importing data units from a folder of images or a JSONL manifest: streaming, checked, all or nothing."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from common.errors import InvalidInputError
from common.store import Store
from common.workflow import Workflow
from producer.importer import file_hash, import_data, open_source


def _images(root: Path, names: list[str]) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not really an image")
    return root


def _manifest(path: Path, lines: list[Any]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def _line(title: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "files": {"image": {"url": f"s3://bucket/{title}", "is_primary": True}}, **extra}


def _total(store: Store, project_id: str) -> int:
    return sum(sum(by_status.values()) for by_status in store.counts(project_id).values())


def test_folder_gives_one_unit_per_image_recursively(tmp_path: Path) -> None:
    # Given a folder with images at two levels, a text file and a hidden image
    root = _images(tmp_path / "fruit", ["b.PNG", "a.jpg", "sub/c.webp", "notes.txt", ".hidden.jpg"])

    # When it is read
    source = open_source(root)
    units = list(source.units())

    # Then each image is one unit, in sorted order, its file under "image" as a file:// URL
    assert source.kind == "folder" and source.default_dataset == "fruit"
    assert [u.title for u in units] == ["a.jpg", "b.PNG", "sub/c.webp"]
    first = units[0].files["image"]
    assert first.url == (root / "a.jpg").resolve().as_uri() and first.is_primary and first.original_name == "a.jpg"
    # And the data hash is the uuid5 of that URL: the same folder always gives the same hashes
    assert units[0].data_hash == str(uuid.uuid5(uuid.NAMESPACE_URL, first.url))
    assert [u.data_hash for u in open_source(root).units()] == [u.data_hash for u in units]


def test_manifest_lines_become_units(tmp_path: Path) -> None:
    # Given a manifest with a given hash, a derived hash, metadata, two files and a blank line
    given = str(uuid.uuid4())
    two_files = {
        "title": "scan",
        "meta": {"site": "north"},
        "files": {"front": {"url": "file:///d/f.png", "is_primary": True}, "back": {"url": "file:///d/b.png"}},
    }
    path = _manifest(tmp_path / "units.jsonl", [_line("a.jpg", data_hash=given), "", two_files])

    # When it is read
    units = list(open_source(path).units())

    # Then the units carry what the lines say
    assert [u.title for u in units] == ["a.jpg", "scan"]
    assert units[0].data_hash == given
    assert units[1].data_hash == file_hash("file:///d/f.png")
    assert units[1].meta == {"site": "north"} and set(units[1].files) == {"front", "back"}
    assert units[1].primary is not None and units[1].primary.url == "file:///d/f.png"
    assert units[1].files["back"].original_name == "b.png"


def test_manifest_is_read_lazily(tmp_path: Path) -> None:
    # Given a manifest whose third line is broken
    path = _manifest(tmp_path / "m.jsonl", [_line("a"), _line("b"), "{oops"])

    # When only the first unit is taken
    first = next(open_source(path).units())

    # Then it comes without the broken line being read
    assert first.title == "a"


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("{not json", "m.jsonl line 2: not valid JSON"),
        ("[1, 2]", "m.jsonl line 2: expected a JSON object"),
        ({"title": "x"}, "m.jsonl line 2: files: Field required"),
        ({"title": "", "files": {"image": {"url": "u"}}}, "m.jsonl line 2: title: String should have at least 1"),
        ({"title": "x", "files": {"image": {"url": "u"}}, "colour": 1}, "line 2: colour: Extra inputs"),
        (
            {"title": "x", "data_hash": "nope", "files": {"i": {"url": "u"}}},
            "line 2: data_hash: Input should be a valid UUID",
        ),
        (
            {"title": "x", "files": {"a": {"url": "u", "is_primary": True}, "b": {"url": "v", "is_primary": True}}},
            "line 2: files: Value error, only one file may be is_primary",
        ),
    ],
)
def test_bad_manifest_line_names_its_number_and_problem(tmp_path: Path, bad: Any, expected: str) -> None:
    # Given a manifest whose second line is wrong
    path = _manifest(tmp_path / "m.jsonl", [_line("ok"), bad])

    # When it is read, Then the error names the line and what is wrong, with an example of a good line
    with pytest.raises(InvalidInputError, match=r"a line looks like|each line holds|expected a JSON") as err:
        list(open_source(path).units())
    assert expected in str(err.value)


def test_paths_that_are_not_sources_are_refused(tmp_path: Path) -> None:
    # Given a missing path and a file of the wrong kind
    (tmp_path / "notes.txt").write_text("hello")

    # When they are opened, Then each error says what to pass instead
    with pytest.raises(InvalidInputError, match="does not exist; pass a folder of images or a JSONL manifest"):
        open_source(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match=r"neither a folder of images nor a JSONL manifest"):
        open_source(tmp_path / "notes.txt")


def test_import_creates_tasks_in_the_start_stage(store: Store, seed_workflow: Workflow, tmp_path: Path) -> None:
    # Given a project and a folder of five apples
    project = store.create_project("apples", seed_workflow)
    root = _images(tmp_path / "orchard", [f"apples_0{i}.jpg" for i in range(1, 6)])
    seen: list[tuple[str, int, int | None]] = []

    # When the folder is imported
    report = import_data(store, project.id, open_source(root), progress=lambda *a: seen.append(a))

    # Then five tasks wait NEW in Annotate 1, in a dataset named after the folder
    start = seed_workflow.stage("Annotate 1").uuid
    assert report.imported == 5 and report.dataset == "orchard"
    assert store.counts(project.id) == {start: {"NEW": 5}}
    titles = [t.data_title for t in store.iter_tasks(project.id, start, {"dataset": "orchard"})]
    assert titles == [f"apples_0{i}.jpg" for i in range(1, 6)]
    assert seen[-1] == ("importing", 5, 5)


def test_reimport_and_bad_lines_import_nothing(store: Store, seed_workflow: Workflow, tmp_path: Path) -> None:
    # Given a project that imported two units from a manifest
    project = store.create_project("apples", seed_workflow)
    import_data(store, project.id, open_source(_manifest(tmp_path / "first.jsonl", [_line("a"), _line("b")])))

    # When a second manifest repeats one of them after a new one
    again = _manifest(tmp_path / "again.jsonl", [_line("new"), _line("b")])
    with pytest.raises(InvalidInputError, match=r"data unit 'b' .* is already imported as 'b'"):
        import_data(store, project.id, open_source(again))

    # And a third one has a bad last line, or lists a unit twice
    broken = _manifest(tmp_path / "broken.jsonl", [_line("c"), _line("d"), '{"title": 3}'])
    with pytest.raises(InvalidInputError, match=r"broken\.jsonl line 3"):
        import_data(store, project.id, open_source(broken))
    twice = _manifest(tmp_path / "twice.jsonl", [_line("e"), _line("e")])
    with pytest.raises(InvalidInputError, match=r"'e' .* is listed twice in twice\.jsonl"):
        import_data(store, project.id, open_source(twice))

    # Then none of them imported anything, not even the good lines before the bad one
    assert _total(store, project.id) == 2


def test_empty_folder_is_refused(store: Store, seed_workflow: Workflow, tmp_path: Path) -> None:
    # Given a folder without images
    project = store.create_project("apples", seed_workflow)
    _images(tmp_path / "empty", ["readme.md"])

    # When it is imported, Then the error lists the image types looked for
    with pytest.raises(InvalidInputError, match=r"holds no images \(.*\.jpg.*\); nothing to import"):
        import_data(store, project.id, open_source(tmp_path / "empty"))
