"""The sandbox's HTTP control endpoint: `answer` serves it, `SandboxControl` drives it from afar
(e.g. the sandbox inside a `make run` subprocess).

The control endpoint lives under ``/__sandbox/`` on the sandbox's own port and
answers loopback clients only (no key: the sandbox itself only listens on
127.0.0.1).  Every call mirrors a `MiniMaxSandbox` method:

==================================  ===============================================
``POST /__sandbox/fail_next``       ``{"path", "mode", "code"?, "msg"?, "status"?,
                                    "seconds"?, "after_chunks"?, "times"?}``
``POST /__sandbox/fail_when``       ``{"path", "code": 1002 | "mode", "match"?: "substring",
                                    "times"?: n | null, ...}``
``POST /__sandbox/clear_failures``  ``{}``
``POST /__sandbox/set_delay``       ``{"path", "seconds"}``
``POST /__sandbox/audio_size``      ``{"size": n | null}``
``POST /__sandbox/register_voice``  ``{"voice_id"}``
``POST /__sandbox/advance_clock``   ``{"seconds"}`` (the 7-day rule sees the new time)
``POST /__sandbox/reset``           ``{"voices"?: true}``
``GET  /__sandbox/calls``           the recorded calls (path, trace_id, codes, stream facts)
``GET  /__sandbox/voices``          cloned voices and their state
``GET  /__sandbox/config``          window and pacing
``POST /__sandbox/fail_task_when``  ``{"match": "substring", "times"?}``: async tasks whose text
                                    contains it end ``failed``
``POST /__sandbox/async_config``    ``{"seconds_per_task"?, "ms_per_char"?}``
``GET  /__sandbox/async``           async tasks: count, running, max_concurrent
==================================  ===============================================
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from kyma_local.sandbox.async_tasks import AsyncTasks
from kyma_local.sandbox.transport import Handler, is_loopback, send_raw
from kyma_local.sandbox.voices import VoiceRegistry
from kyma_local.sandbox.wire import RecordedCall


class Controlled(Protocol):
    """The sandbox methods the control endpoint mirrors (`MiniMaxSandbox`, which imports this module)."""

    registry: VoiceRegistry
    async_tasks: AsyncTasks
    first_chunk_ms: float
    chunk_ms: float
    chunk_interval_ms: float

    @property
    def calls(self) -> Sequence[RecordedCall]: ...
    @property
    def base_url(self) -> str: ...
    def fail_next(self, path: str, mode: str, /, *, code: int = ..., msg: str | None = ..., status: int = ...,
                  seconds: float = ..., after_chunks: int = ..., times: int = ...) -> None: ...
    def fail_when(self, path: str, code: int | str, /, *, match: Callable[[RecordedCall], bool] | str | None = ...,
                  times: int | None = ..., msg: str | None = ..., status: int = ..., seconds: float = ...,
                  after_chunks: int = ...) -> object: ...
    def clear_failures(self) -> None: ...
    def set_delay(self, path: str, seconds: float, /) -> None: ...
    def audio_size(self, size: int | None, /) -> None: ...
    def register_voice(self, voice_id: str, /) -> None: ...
    def advance_clock(self, seconds: float, /) -> None: ...
    def reset(self, *, voices: bool = ...) -> None: ...


class SandboxControl:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.url = base_url.rstrip("/") + "/__sandbox/"
        self.timeout = timeout

    def _call(self, method: str, action: str, body: dict | None = None) -> Any:
        data = json.dumps(body or {}).encode() if method == "POST" else None
        request = urllib.request.Request(self.url + action, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read())

    def fail_next(self, path: str, mode: str, **options: Any) -> None:
        self._call("POST", "fail_next", {"path": path, "mode": mode, **options})

    def fail_when(self, path: str, code: int | str, **options: Any) -> None:
        self._call("POST", "fail_when", {"path": path, "code": code, **options})

    def clear_failures(self) -> None:
        self._call("POST", "clear_failures")

    def set_delay(self, path: str, seconds: float) -> None:
        self._call("POST", "set_delay", {"path": path, "seconds": seconds})

    def audio_size(self, size: int | None) -> None:
        self._call("POST", "audio_size", {"size": size})

    def register_voice(self, voice_id: str) -> None:
        self._call("POST", "register_voice", {"voice_id": voice_id})

    def advance_clock(self, seconds: float) -> None:
        self._call("POST", "advance_clock", {"seconds": seconds})

    def reset(self, *, voices: bool = False) -> None:
        self._call("POST", "reset", {"voices": voices})

    def calls(self) -> list[dict]:
        return self._call("GET", "calls")

    def voices(self) -> dict[str, dict]:
        return self._call("GET", "voices")

    def config(self) -> dict:
        return self._call("GET", "config")

    def fail_task_when(self, match: str, times: int | None = None) -> None:
        self._call("POST", "fail_task_when", {"match": match, "times": times})

    def async_config(self, **options: float) -> None:
        self._call("POST", "async_config", options)

    def async_stats(self) -> dict:
        return self._call("GET", "async")


def answer(sandbox: Controlled, h: Handler, action: str, body: bytes) -> None:
    """Serve one control request (``/__sandbox/<action>``): loopback clients only."""
    if not is_loopback(h.client_address[0]):
        send_raw(h, None, 403, b'{"error": "loopback only"}', "application/json", "")
        return
    try:
        args = json.loads(body) if body else {}
        if not isinstance(args, dict):
            raise ValueError("the body must be a JSON object")
        result = _act(sandbox, h.command, action, args)
    except (ValueError, TypeError, KeyError) as exc:
        send_raw(h, None, 400, json.dumps({"error": str(exc)}).encode(), "application/json", "")
        return
    send_raw(h, None, 200, json.dumps(result).encode(), "application/json", "")


def _act(sandbox: Controlled, method: str, action: str, args: dict) -> Any:
    if method == "GET" and action == "calls":
        return [c.summary() for c in sandbox.calls]
    if method == "GET" and action == "voices":
        return {v: voice.as_dict() for v, voice in sandbox.registry.all().items()}
    if method == "GET" and action == "config":
        return {"base_url": sandbox.base_url, "voice_window_seconds": sandbox.registry.window_seconds,
                "first_chunk_ms": sandbox.first_chunk_ms, "chunk_ms": sandbox.chunk_ms,
                "chunk_interval_ms": sandbox.chunk_interval_ms}
    if method == "GET" and action == "async":
        return sandbox.async_tasks.stats()
    if method != "POST":
        raise ValueError(f"unknown control {method} {action}")
    failure_options = {k: args[k] for k in ("msg", "status", "seconds", "after_chunks") if k in args}
    if action == "fail_next":
        sandbox.fail_next(args["path"], args["mode"], code=int(args.get("code", 1000)),
                          times=int(args.get("times", 1)), **failure_options)
    elif action == "fail_when":
        match = args.get("match")
        if match is not None and not isinstance(match, str):
            raise ValueError("match: a substring of the request body")
        times = args.get("times")
        sandbox.fail_when(args["path"], args["code"], match=match,
                          times=None if times is None else int(times), **failure_options)
    elif action == "fail_task_when":
        times = args.get("times")
        sandbox.async_tasks.fail_task_when(str(args["match"]), None if times is None else int(times))
    elif action == "async_config":
        if "seconds_per_task" in args:
            sandbox.async_tasks.seconds_per_task = float(args["seconds_per_task"])
        if "ms_per_char" in args:
            sandbox.async_tasks.ms_per_char = float(args["ms_per_char"])
    elif action == "clear_failures":
        sandbox.clear_failures()
    elif action == "set_delay":
        sandbox.set_delay(args["path"], float(args["seconds"]))
    elif action == "audio_size":
        sandbox.audio_size(None if args.get("size") is None else int(args["size"]))
    elif action == "register_voice":
        sandbox.register_voice(args["voice_id"])
    elif action == "advance_clock":
        sandbox.advance_clock(float(args["seconds"]))
    elif action == "reset":
        sandbox.reset(voices=bool(args.get("voices", False)))
    else:
        raise ValueError(f"unknown control {action!r}")
    return {"ok": True}
