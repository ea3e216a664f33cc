"""A Docker-free stand-in for the Lambda runtime.

Each function has a pool of execution environments.  An environment is a
fresh import of the function's module (its own module-level state: clients,
caches), used by one invocation at a time and reused afterwards, like a warm
Lambda environment.  Concurrent invocations get separate environments, up to
`max_environments`; further ones wait, like reserved concurrency.
"""

from __future__ import annotations

import importlib.util
import itertools
import queue
import threading
import time
import traceback
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Generic, TypeVar

from kyma_local.aws_calls import invoking
from kyma_local.template import Function

_module_counter = itertools.count()
E = TypeVar("E")


@dataclass
class LambdaContext:
    """The attributes of the Python runtime's context object."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


@dataclass(frozen=True)
class InvokeResult:
    payload: Any                 # what the handler returned (when ok)
    error: str | None = None     # "Unhandled" (exception) or "TimedOut"
    error_message: str = ""
    cold_start: bool = False
    duration_ms: float = 0.0


class EnvironmentPool(ABC, Generic[E]):
    """Warm execution environments of one function: one invocation at a time each, reused
    afterwards; concurrent invocations get separate ones, up to `max_environments`."""

    def __init__(self, function: Function, *, max_environments: int = 16,
                 timeout_override: float | None = None) -> None:
        self.function = function
        self.max_environments = max_environments
        self.timeout = timeout_override or function.timeout
        self._idle: queue.LifoQueue[E] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max_environments)

    @abstractmethod
    def environment(self) -> E:
        """A freshly initialised execution environment (not part of the pool)."""

    def _warm_or_new(self) -> tuple[E, bool]:
        """An idle environment, or a new one (True: a cold start); the caller holds a slot."""
        try:
            return self._idle.get_nowait(), False
        except queue.Empty:
            return self.environment(), True


class FunctionPool(EnvironmentPool[Callable]):
    """A zip function's environments: its module, imported anew, called as its handler."""

    def environment(self) -> Callable:
        """A freshly initialised execution environment: the module imported anew (its INIT
        phase run), returned as its handler.  Not part of the pool."""
        name = f"kyma_fn_{self.function.logical_id}_{next(_module_counter)}"
        spec = importlib.util.spec_from_file_location(name, self.function.module_path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {self.function.module_path}")
        module: ModuleType = importlib.util.module_from_spec(spec)
        with invoking(self.function.logical_id):   # its AWS calls are this function's (aws_calls)
            spec.loader.exec_module(module)  # the INIT phase
        return getattr(module, self.function.handler_name)

    def invoke(self, event: Any) -> InvokeResult:
        with self._slots:
            handler, cold = self._warm_or_new()
            context = LambdaContext(self.function.logical_id, self.function.memory_mb, int(self.timeout))
            outcome: dict[str, Any] = {}
            started = time.monotonic()

            def run() -> None:
                try:
                    with invoking(self.function.logical_id):
                        outcome["payload"] = handler(event, context)
                except Exception as exc:  # the runtime reports it; API Gateway answers 502
                    outcome["error"] = f"{type(exc).__name__}: {exc}"
                    outcome["trace"] = traceback.format_exc()

            worker = threading.Thread(target=run, daemon=True, name=f"lambda-{self.function.logical_id}")
            worker.start()
            worker.join(self.timeout)
            duration = (time.monotonic() - started) * 1000
            if worker.is_alive():
                # Lambda would freeze and discard this environment; ours keeps running
                # in the background, so it is never reused.
                return InvokeResult(None, "TimedOut", f"Task timed out after {self.timeout:.2f} seconds",
                                    cold, duration)
            self._idle.put(handler)
            if "error" in outcome:
                print(outcome["trace"], flush=True)
                return InvokeResult(None, "Unhandled", outcome["error"], cold, duration)
            return InvokeResult(outcome.get("payload"), None, "", cold, duration)
