"""Pre-processors by name: in-process plugins and remote model servers, and their readiness.

A name resolves to, in order: a registered plugin or server (``haar-face`` is built in),
an ``http(s)://`` model-server URL, or a ``package.module:Class`` plugin to import.
Instances are made and loaded once per process, lazily, so a forked worker loads its own.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable

from common.errors import InvalidInputError, NotFoundError, TransientError
from common.totask.preprocessors.base import InferenceItem, Prediction, PreProcessor
from common.totask.preprocessors.haar import HaarFaceDetector
from common.totask.preprocessors.remote import RemotePreProcessor

__all__ = [
    "REGISTRY",
    "HaarFaceDetector",
    "InferenceItem",
    "PreProcessor",
    "PreProcessorRegistry",
    "Prediction",
    "RemotePreProcessor",
    "ensure_ready",
]

Factory = Callable[[], PreProcessor]


class PreProcessorRegistry:
    """Names to factories, and this process's loaded instances."""

    def __init__(self) -> None:
        self._factories: dict[str, Factory] = {}
        self._loaded: dict[str, PreProcessor] = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def register(self, name: str, factory: Factory) -> None:
        """Register an in-process plugin (a class or any factory of one)."""
        self._factories[name] = factory

    def register_remote(self, name: str, url: str, version: str = "remote") -> None:
        """Register a remote model server under a name."""
        self._factories[name] = lambda: RemotePreProcessor(name, url, version)

    def names(self) -> list[str]:
        """The registered names."""
        return sorted(self._factories)

    def create(self, name: str) -> PreProcessor:
        """A new, unloaded instance for a name.

        Raises:
            NotFoundError: "Pre-processor not found" with the registered names.
            InvalidInputError: a ``module:Class`` that cannot be imported or is no pre-processor.
        """
        if name in self._factories:
            return self._factories[name]()
        if name.startswith(("http://", "https://")):
            return RemotePreProcessor(name, name)
        if ":" in name:
            return self._import(name)
        raise NotFoundError(
            f"Pre-processor not found: {name!r}; registered: {', '.join(self.names()) or 'none'}; "
            "or give an http(s):// model server URL or a 'package.module:Class' plugin"
        )

    def _import(self, ref: str) -> PreProcessor:
        module_name, _, attr = ref.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise InvalidInputError(f"Pre-processor {ref!r} cannot be imported ({e}); install it on the workers") from e
        instance = factory()
        if not isinstance(instance, PreProcessor):
            raise InvalidInputError(
                f"Pre-processor {ref!r} lacks name, version, needs_bytes, load(), health() or predict(); "
                "implement the PreProcessor protocol"
            )
        return instance

    def get(self, name: str) -> PreProcessor:
        """This process's loaded instance, loading it on first use.

        Raises:
            NotFoundError: unknown name. InvalidInputError: a plugin that cannot be imported.
            Any error the plugin's ``load()`` raises.
        """
        with self._lock:
            if self._pid != os.getpid():
                # Forked: the parent's models (threads, sessions) are not usable here.
                self._loaded, self._pid = {}, os.getpid()
            if name not in self._loaded:
                instance = self.create(name)
                instance.load()
                self._loaded[name] = instance
            return self._loaded[name]

    def ensure_ready(self, name: str, timeout: float = 180.0, poll: float = 0.5) -> PreProcessor:
        """Check the pre-processor is active, start it if we can, wait until it is ready.

        In-process plugins are started by loading them; a remote server is polled on
        ``/health`` until it answers ready or ``timeout`` seconds pass.

        Raises:
            NotFoundError: the name resolves to nothing.
            TransientError: "Pre-processor not active", when it fails to load or is not
                ready within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        try:
            instance = self.get(name)
        except (NotFoundError, InvalidInputError):
            raise
        except Exception as e:  # a plugin's load() may fail any way it likes
            raise TransientError(
                f"Pre-processor not active: loading {name!r} failed ({type(e).__name__}: {e}); "
                "fix the plugin or its model files and run again"
            ) from e
        while not instance.health():
            if time.monotonic() >= deadline:
                where = f" at {instance.base_url}" if isinstance(instance, RemotePreProcessor) else ""
                raise TransientError(
                    f"Pre-processor not active: {name!r}{where} was not ready within {timeout:g} s; "
                    "deploy and start it before running inference annotation"
                )
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        return instance


REGISTRY = PreProcessorRegistry()
REGISTRY.register("haar-face", HaarFaceDetector)


def ensure_ready(name: str, timeout: float = 180.0, registry: PreProcessorRegistry | None = None) -> PreProcessor:
    """Check and wait for a pre-processor in the default registry (see ``PreProcessorRegistry.ensure_ready``).

    Raises:
        NotFoundError: unknown name.
        TransientError: "Pre-processor not active".
    """
    return (registry or REGISTRY).ensure_ready(name, timeout)
