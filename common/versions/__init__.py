"""Versions of a project: saved as deltas over shared label blobs, restored, compared, read as run inputs."""

from common.versions.create import create_version
from common.versions.diff import StageChange, VersionDiff, diff_versions
from common.versions.resolve import RunInput, list_versions, parse_ref, resolve_input, resolve_target
from common.versions.restore import RestoreResult, restore_version
from common.versions.snapshot import VersionRecord

__all__ = [
    "RestoreResult",
    "RunInput",
    "StageChange",
    "VersionDiff",
    "VersionRecord",
    "create_version",
    "diff_versions",
    "list_versions",
    "parse_ref",
    "resolve_input",
    "resolve_target",
    "restore_version",
]
