"""MiniMax's asynchronous T2A in the sandbox: tasks that take time, fail on request, and expire.

``POST /v1/t2a_async_v2``               a task (``task_id``, ``file_id``, ``usage_characters``); the
                                        body is checked like t2a_v2's, with MiniMax's async names
                                        (``audio_setting.audio_sample_rate``) and text up to 50,000
``GET /v1/query/t2a_async_query_v2``    ``status``: processing for ``seconds_per_task`` (sandbox
                                        clock), then success (or failed, if a rule says so); expired
                                        9 hours after it finished
``GET /v1/files/retrieve``              ``file.download_url``: a URL on this server, valid until
                                        the result expires
``GET /__files/<token>``                the result: a tar with ``<task_id>.<format>`` (real audio,
                                        as t2a_v2 renders it), ``<task_id>.json`` (sentence
                                        subtitles: text, time_begin, time_end in ms, text_begin,
                                        text_end) and ``<task_id>_extra.json`` (extra info)

The sandbox counts tasks rendering at once (`max_concurrent`): what MiniMax's concurrency
limit would see.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import re
import secrets
import tarfile
import threading
from dataclasses import dataclass
from typing import Any

from kyma_local.sandbox import audio as sandbox_audio
from kyma_local.sandbox.validation import Synthesis, validate_t2a
from kyma_local.sandbox.wire import Reject, base_resp

MAX_ASYNC_TEXT = 50_000
RESULT_HOURS = 9
DEFAULT_SECONDS_PER_TASK = 20.0
_SENTENCE = re.compile(r"[^.!?。！？]+[.!?。！？]*\s*")


@dataclass
class Task:
    task_id: str
    file_id: str
    synthesis: Synthesis
    created_at: float
    done_at: float
    fails: bool = False
    token: str = ""


class AsyncTasks:
    def __init__(self, account: Any, lock: threading.RLock, *, seconds_per_task: float = DEFAULT_SECONDS_PER_TASK,
                 ms_per_char: float = sandbox_audio.MS_PER_CHAR) -> None:
        self.account = account
        self.lock = lock
        self.seconds_per_task = float(seconds_per_task)
        self.ms_per_char = float(ms_per_char)
        self.tasks: dict[str, Task] = {}
        self.by_file: dict[str, Task] = {}
        self.by_token: dict[str, Task] = {}
        self.fail_rules: list[dict] = []        # {"match": substring, "times": n | None, "hits": 0}
        self.max_concurrent = 0
        self._ids = itertools.count(300_000_000_000_001)

    def now(self) -> float:
        return float(self.account.registry.now())

    def running(self, now: float) -> int:
        return sum(1 for t in self.tasks.values() if t.created_at <= now < t.done_at)

    # ── endpoints ──
    def create(self, body: Any, trace_id: str) -> dict:
        synthesis = validate_async(body)
        self.account.use_voice(synthesis.voice_id)       # 20132 for a voice MiniMax does not have
        now = self.now()
        with self.lock:
            n = next(self._ids)
            task = Task(str(n), str(n + 7_000_000), synthesis, now, now + self.seconds_per_task,
                        fails=self._fails(synthesis.text), token=secrets.token_urlsafe(16))
            self.tasks[task.task_id] = task
            self.by_file[task.file_id] = task
            self.by_token[task.token] = task
            self.max_concurrent = max(self.max_concurrent, self.running(now))
        return {"task_id": int(task.task_id), "task_token": secrets.token_hex(8), "file_id": int(task.file_id),
                "usage_characters": len(synthesis.text), "trace_id": trace_id, "base_resp": base_resp(0)}

    def query(self, query: dict[str, str], trace_id: str) -> dict:
        task = self.tasks.get(query.get("task_id", ""))
        if task is None:
            raise Reject(2013, "invalid params, task_id not found")
        status = self.status(task)
        return {"task_id": int(task.task_id), "status": status,
                "file_id": int(task.file_id) if status == "success" else None,
                "trace_id": trace_id, "base_resp": base_resp(0)}

    def retrieve(self, query: dict[str, str], base_url: str, trace_id: str) -> dict:
        task = self.by_file.get(query.get("file_id", ""))
        if task is None or self.status(task) != "success":
            raise Reject(2013, "invalid params, file not found")
        return {"file": {"file_id": int(task.file_id), "bytes": 0, "created_at": int(task.done_at),
                         "filename": f"{task.task_id}.tar", "purpose": "t2a_async",
                         "download_url": f"{base_url}/__files/{task.token}"},
                "trace_id": trace_id, "base_resp": base_resp(0)}

    def download(self, token: str) -> bytes | None:
        task = self.by_token.get(token)
        if task is None or self.status(task) != "success":
            return None
        return archive(task, self.ms_per_char)

    def status(self, task: Task) -> str:
        now = self.now()
        if now < task.done_at:
            return "processing"
        if task.fails:
            return "failed"
        if now >= task.done_at + RESULT_HOURS * 3600:
            return "expired"
        return "success"

    # ── controls ──
    def fail_task_when(self, match: str, times: int | None = None) -> None:
        with self.lock:
            self.fail_rules.append({"match": match, "times": times, "hits": 0})

    def _fails(self, text: str) -> bool:
        for rule in self.fail_rules:
            if rule["match"] in text and (rule["times"] is None or rule["hits"] < rule["times"]):
                rule["hits"] += 1
                return True
        return False

    def stats(self) -> dict:
        with self.lock:
            now = self.now()
            return {"tasks": len(self.tasks), "running": self.running(now), "max_concurrent": self.max_concurrent,
                    "seconds_per_task": self.seconds_per_task, "ms_per_char": self.ms_per_char,
                    "characters": [len(t.synthesis.text) for t in self.tasks.values()]}

    def reset(self) -> None:
        with self.lock:
            self.tasks.clear()
            self.by_file.clear()
            self.by_token.clear()
            self.fail_rules.clear()
            self.max_concurrent = 0


def validate_async(body: Any) -> Synthesis:
    """t2a_v2's checks with the async names: `audio_sample_rate`, text up to 50,000 characters."""
    if not isinstance(body, dict):
        raise Reject(2013, "invalid params, body is not a JSON object")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise Reject(2013, "invalid params, text is empty")
    if len(text) > MAX_ASYNC_TEXT:
        raise Reject(2013, f"invalid params, text must be at most {MAX_ASYNC_TEXT} characters")
    setting = body.get("audio_setting") or {}
    if not isinstance(setting, dict):
        raise Reject(2013, "invalid params, audio_setting must be an object")
    if "sample_rate" in setting:
        raise Reject(2013, "invalid params, audio_setting.sample_rate: the async API takes audio_sample_rate")
    if "stream" in body:
        raise Reject(2013, "invalid params, stream is not a field of t2a_async_v2")
    setting = {**setting, "sample_rate": setting.get("audio_sample_rate", 32000)}
    setting.pop("audio_sample_rate", None)
    checked = validate_t2a({**body, "text": text[:100], "audio_setting": setting})
    return dataclasses.replace(checked, text=text, body={**checked.body, "text": text})


def subtitles(text: str, duration_ms: int) -> list[dict]:
    """Sentence cues over the whole audio, in proportion to their characters."""
    sentences = [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if m.group().strip()] or [(0, len(text))]
    total = max(1, sum(b - a for a, b in sentences))
    cues, at, used = [], 0, 0
    for a, b in sentences:
        used += b - a
        end = round(duration_ms * used / total)
        cues.append({"text": text[a:b].strip(), "time_begin": at, "time_end": end, "text_begin": a, "text_end": b})
        at = end
    return cues


def archive(task: Task, ms_per_char: float) -> bytes:
    s = task.synthesis
    seed = int.from_bytes(task.task_id.encode()[-8:], "big")
    rendered = sandbox_audio.render(s.fmt, s.rate, s.channels, s.bitrate, seed,
                                    int(sandbox_audio.LEAD_IN_MS + ms_per_char * len(s.text)))
    # What a decoder plays: every MP3 frame counted (the tiled clip's encoder padding included).
    length_ms = (round(len(rendered.unit_starts) * rendered.unit_ms) if s.fmt == "mp3" and rendered.unit_starts
                 else rendered.duration_ms)
    extra = {"audio_length": length_ms, "audio_sample_rate": s.rate, "audio_size": len(rendered.audio),
             "bitrate": s.bitrate, "audio_format": s.fmt, "audio_channel": s.channels,
             "usage_characters": len(s.text), "word_count": len(s.text.split())}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in ((f"{task.task_id}.{s.fmt}", rendered.audio),
                           (f"{task.task_id}.json", json.dumps(subtitles(s.text, length_ms)).encode()),
                           (f"{task.task_id}_extra.json", json.dumps(extra).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(task.done_at)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
