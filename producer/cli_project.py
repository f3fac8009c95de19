"""Commands for projects, data, users and tasks (filled in by the CLI work)."""

from __future__ import annotations
