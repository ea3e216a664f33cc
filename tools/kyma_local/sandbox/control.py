"""Drive a running sandbox over HTTP, e.g. the one inside a `make run` subprocess.

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
==================================  ===============================================
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any


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
