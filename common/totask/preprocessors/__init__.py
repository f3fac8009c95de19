"""Pre-processors by name: in-process plugins and remote model servers, and their readiness.

A name resolves to, in order: a registered plugin or server (``haar-face``, ``onnx`` and
``text`` are built in), a ``v2+http(s)://HOST/v2/models/NAME`` model on a KServe v2 /
Triton server, an ``http(s)://`` model-server URL, or a ``package.module:Class`` plugin.
Instances are made and loaded once per process, lazily, so a forked worker loads its own.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable

from common.errors import AnnoflowError, InvalidInputError, NotFoundError, TransientError
from common.totask.params import PreProcessorParams
from common.totask.preprocessors.base import ChecksParams, InferenceItem, Prediction, PreProcessor
from common.totask.preprocessors.haar import HaarFaceDetector
from common.totask.preprocessors.kserve import V2_SCHEME, V2PreProcessor
from common.totask.preprocessors.onnx import OnnxDetector
from common.totask.preprocessors.remote import RemotePreProcessor
from common.totask.preprocessors.text import TextDetector

__all__ = [
    "REGISTRY",
    "ChecksParams",
    "HaarFaceDetector",
    "InferenceItem",
    "OnnxDetector",
    "PreProcessor",
    "PreProcessorRegistry",
    "Prediction",
    "RemotePreProcessor",
    "TextDetector",
    "V2PreProcessor",
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

    def register_v2(self, name: str, url: str, model: str) -> None:
        """Register a model on a KServe v2 / Triton inference server (``url`` is the server's base URL)."""
        self._factories[name] = lambda: V2PreProcessor(name, url, model)

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
        if name.startswith(V2_SCHEME):
            return V2PreProcessor.from_url(name)
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

    def ensure_ready(
        self, name: str, timeout: float = 180.0, poll: float = 0.5, params: PreProcessorParams | None = None
    ) -> PreProcessor:
        """Check the pre-processor is active, start it if we can, wait until it is ready.

        In-process plugins are started by loading them; a remote server is polled on
        ``/health`` until it answers ready or ``timeout`` seconds pass. Given the run's
        ``params``, a pre-processor with a ``check`` (``ChecksParams``) then checks them
        against its model (file, input shape, class names).

        Raises:
            NotFoundError: the name resolves to nothing.
            TransientError: "Pre-processor not active", when it fails to load or is not
                ready within ``timeout``.
            InvalidInputError: the parameters do not fit the model (from ``check``).
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
                where = f" at {instance.base_url}" if isinstance(instance, RemotePreProcessor | V2PreProcessor) else ""
                raise TransientError(
                    f"Pre-processor not active: {name!r}{where} was not ready within {timeout:g} s; "
                    "deploy and start it before running inference annotation"
                )
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        if params is not None and isinstance(instance, ChecksParams):
            try:
                instance.check(params)
            except AnnoflowError:
                raise
            except Exception as e:  # a plugin's check may fail any way it likes
                raise InvalidInputError(
                    f"Pre-processor {name!r} refused the parameters ({type(e).__name__}: {e}); fix pre_processor_params"
                ) from e
        return instance


REGISTRY = PreProcessorRegistry()
REGISTRY.register("haar-face", HaarFaceDetector)
REGISTRY.register("onnx", OnnxDetector)
REGISTRY.register("text", TextDetector)


def ensure_ready(
    name: str,
    timeout: float = 180.0,
    registry: PreProcessorRegistry | None = None,
    params: PreProcessorParams | None = None,
) -> PreProcessor:
    """Check and wait for a pre-processor in the default registry (see ``PreProcessorRegistry.ensure_ready``).

    Raises:
        NotFoundError: unknown name.
        TransientError: "Pre-processor not active".
        InvalidInputError: the parameters do not fit the model.
    """
    return (registry or REGISTRY).ensure_ready(name, timeout, params=params)
