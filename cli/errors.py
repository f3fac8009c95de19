"""How the ``annoflow`` command reports a failure: one line, what is wrong and how to fix it.

The root command group runs click in non-standalone mode and turns every
error a user can cause into a short message on stderr and an exit code:

* usage errors (unknown option, missing argument, bad choice) and any
  :class:`AnnoflowError` but a transient one: exit 2;
* :class:`TransientError` (a server did not answer): exit 1, "retry later";
* an invalid ``ANNOFLOW_*`` setting: exit 2.

No traceback: a traceback is reserved for annoflow's own bugs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from common.errors import AnnoflowError, TransientError

try:  # recent typer vendors its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # older typer runs on click itself
    from click import exceptions as click_errors  # type: ignore[no-redef]

__all__ = ["USAGE_EXIT", "AnnoflowGroup", "error_line"]

USAGE_EXIT = 2
_TRANSIENT_EXIT = 1
_ABORT_EXIT = 130


def error_line(e: BaseException) -> tuple[str, int]:
    """The message and exit code for an error a user caused, or raise it again if it is a bug."""
    if isinstance(e, click_errors.UsageError):
        where = e.ctx.command_path if e.ctx is not None else "annoflow"
        message = " ".join(e.format_message().split())
        return f"{message} (see '{where} --help')", USAGE_EXIT
    if isinstance(e, TransientError):
        return f"{e} (this may pass; retry later)", _TRANSIENT_EXIT
    if isinstance(e, AnnoflowError):
        return str(e), USAGE_EXIT
    if isinstance(e, ValidationError) and e.title == "Settings":
        first = e.errors()[0]
        field = ".".join(str(x) for x in first["loc"])
        return f"invalid setting ANNOFLOW_{field.upper()}: {first['msg']}", USAGE_EXIT
    if isinstance(e, click_errors.ClickException):
        return " ".join(e.format_message().split()), e.exit_code
    raise e


class AnnoflowGroup(TyperGroup):
    """The root group: runs a command and reports user errors in one line (see module doc)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as e:
            # Bare "annoflow" or "annoflow tasks": help is the answer, not an error.
            e.show(sys.stdout)
            sys.exit(0)
        except typer.Abort:
            _fail("aborted", _ABORT_EXIT)
        except (click_errors.ClickException, AnnoflowError, ValidationError) as e:
            _fail(*error_line(e))
        # Non-standalone click returns an exit code from ctx.exit()/typer.Exit, else the result.
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str, code: int) -> NoReturn:
    # soft_wrap: never break the message into several lines at the terminal width.
    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)
