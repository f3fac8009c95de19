"""How a run's files and models become lineage references (producer.lineage)."""

from __future__ import annotations

from common.lineage import NodeKind
from common.totask.preprocessors import HaarFaceDetector, RemotePreProcessor
from producer.lineage import MAX_FILES, FileTally, pre_processor_refs


def _tally(urls: list[str]) -> list[tuple[str, str, int | None]]:
    tally = FileTally()
    for url in urls:
        tally.add(url)
    return [(r.kind.value, r.key, r.attrs.get("files")) for r in tally.refs()]


def test_a_handful_of_files_are_recorded_one_by_one() -> None:
    # Given / When a run read as many files as the limit
    refs = _tally([f"https://h/ann/{i}.json" for i in range(MAX_FILES)])
    # Then each is a file input
    assert refs == [("file", f"https://h/ann/{i}.json", None) for i in range(MAX_FILES)]


def test_many_files_fold_into_their_folders_then_their_common_parent() -> None:
    # Given / When runs read many files in two folders, and in eight folders under one bucket
    two = _tally([f"https://h/b/{d}/{i}.json" for d in ("jan", "feb") for i in range(4)])
    eight = _tally([f"https://h/b/2025/{d}/{i}.json" for d in range(8) for i in range(3)])
    # Then the first records its two folders with their counts, the second the common parent
    assert two == [("folder", "https://h/b/feb", 4), ("folder", "https://h/b/jan", 4)]
    assert eight == [("folder", "https://h/b/2025", 24)]


def test_files_on_many_hosts_keep_their_biggest_folders() -> None:
    # Given / When a run read files from eight hosts with nothing in common, one host holding most
    refs = _tally([f"https://h{i}/a/x.json" for i in range(8)] + [f"https://h0/a/{i}.json" for i in range(5)])
    # Then at most MAX_FILES folders stand for them, the biggest first among them
    assert len(refs) == MAX_FILES and ("folder", "https://h0/a", 6) in refs


def test_pre_processors_are_recorded_with_version_and_model_files() -> None:
    # Given / When the built-in detector and a remote model server become references
    haar = pre_processor_refs(HaarFaceDetector())
    remote = pre_processor_refs(RemotePreProcessor("cars", "http://models.local:9090/", version="v3"))
    # Then the plugin is named with its version and its cascade XML is a model-weight file
    model, cascade = haar
    assert model.key.startswith("haar-face@opencv-") and model.attrs["model_weight"]
    assert cascade.kind is NodeKind.FILE and cascade.key.endswith(".xml") and cascade.attrs["model_weight"]
    # And the server is its URL, with its version
    (server,) = remote
    assert server.key == "http://models.local:9090" and server.attrs["version"] == "v3" and server.attrs["remote"]
