"""Dependency injection for stage handlers, with ``Depends`` and ``typing.Annotated``.

A handler names what it needs by type, or through a dependency function::

    def crop(asset: Annotated[Path, Depends(dep_asset)]) -> Image: ...

    @runner.stage("Pre-label")
    def pre_label(spec: TaskSpec, unit: DataUnit, image: Annotated[Image, Depends(crop)]) -> str: ...

Dependency functions take parameters the same way, so they resolve
recursively. Each is called once per task (cached), and a generator
dependency is closed when the task ends, whatever the handler did.
The handler's signature is checked when it is registered, so a parameter
that cannot be provided is an error at import time, not on the first task.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

from common.errors import InvalidInputError
from common.models import TaskSpec
from common.runner.context import ProjectInfo, StageInfo, TaskContext
from common.runner.labels import LabelRowEditor
from common.store.records import DataUnit

__all__ = ["Dependant", "Depends", "analyze", "dep_asset", "solve"]

# What a parameter can be by its type alone, and how to get it from the context.
PROVIDERS: dict[type, Callable[[TaskContext], Any]] = {
    TaskSpec: lambda ctx: ctx.spec,
    LabelRowEditor: lambda ctx: ctx.label_row,
    DataUnit: lambda ctx: ctx.data_unit,
    ProjectInfo: lambda ctx: ctx.project,
    StageInfo: lambda ctx: ctx.stage,
    TaskContext: lambda ctx: ctx,
}


class Depends:
    """Mark a parameter as the value of ``dependency`` (called with its own injected parameters)."""

    def __init__(self, dependency: Callable[..., Any]) -> None:
        self.dependency = dependency

    def __repr__(self) -> str:
        return f"Depends({getattr(self.dependency, '__name__', self.dependency)!r})"


@dataclass
class Dependant:
    """A callable and how to provide each of its parameters."""

    call: Callable[..., Any]
    provided: dict[str, type] = field(default_factory=dict)
    sub: dict[str, Dependant] = field(default_factory=dict)

    @property
    def is_generator(self) -> bool:
        return inspect.isgeneratorfunction(self.call)

    def walk(self) -> Iterator[Dependant]:
        """This dependant and every one below it."""
        yield self
        for d in self.sub.values():
            yield from d.walk()

    def needs(self, kind: type | Callable[..., Any]) -> bool:
        """Whether anything in the tree takes a ``kind`` parameter or calls ``kind``."""
        return any(d.call is kind or kind in d.provided.values() for d in self.walk())


def _name(call: Callable[..., Any]) -> str:
    return getattr(call, "__qualname__", repr(call))


def analyze(call: Callable[..., Any]) -> Dependant:
    """Work out how to provide every parameter of ``call``, recursively.

    Raises:
        InvalidInputError: a parameter has no annotation, or one that cannot be
            injected; the message lists what can be.
    """
    try:
        hints = typing.get_type_hints(call, include_extras=True)
    except (NameError, TypeError) as e:
        raise InvalidInputError(
            f"cannot read the type annotations of {_name(call)}: {e}; "
            "define the types it uses at module level so they can be resolved"
        ) from e
    dependant = Dependant(call)
    for name, param in inspect.signature(call).parameters.items():
        hint = hints.get(name)
        marker = param.default if isinstance(param.default, Depends) else None
        if get_origin(hint) is Annotated:
            base, *extras = get_args(hint)
            marker = next((x for x in extras if isinstance(x, Depends)), marker)
            hint = base
        if marker is not None:
            dependant.sub[name] = analyze(marker.dependency)
        elif isinstance(hint, type) and hint in PROVIDERS:
            dependant.provided[name] = hint
        else:
            can = ", ".join(t.__name__ for t in PROVIDERS)
            raise InvalidInputError(
                f"parameter {name!r} of {_name(call)} cannot be injected (annotation {hint!r}); "
                f"annotate it with one of {can}, or with Annotated[T, Depends(function)]"
            )
    return dependant


def solve(dependant: Dependant, ctx: TaskContext, stack: ExitStack, cache: dict[Any, Any]) -> dict[str, Any]:
    """The keyword arguments for ``dependant.call``, resolving and caching dependencies.

    Generator dependencies are entered on ``stack``; closing it runs their cleanup.
    """
    values: dict[str, Any] = {name: PROVIDERS[kind](ctx) for name, kind in dependant.provided.items()}
    for name, sub in dependant.sub.items():
        if sub.call not in cache:
            kwargs = solve(sub, ctx, stack, cache)
            if sub.is_generator:
                cache[sub.call] = stack.enter_context(contextmanager(sub.call)(**kwargs))
            else:
                cache[sub.call] = sub.call(**kwargs)
        values[name] = cache[sub.call]
    return values


def dep_asset(ctx: TaskContext) -> Iterator[Path]:
    """A local copy of the task's primary file, removed when the task ends.

    The runner downloads the assets of a whole batch concurrently before the
    first task runs, so this only hands out the file.

    Raises:
        InvalidInputError: the data unit has no primary file, or it could not be fetched.
    """
    if ctx.asset is None:
        raise InvalidInputError(
            f"no local copy of the primary file of {ctx.spec.data_title!r}: {ctx.asset_error or 'not fetched'}"
        )
    try:
        yield ctx.asset
    finally:
        ctx.asset.unlink(missing_ok=True)
