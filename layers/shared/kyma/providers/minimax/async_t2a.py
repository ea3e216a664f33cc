"""MiniMax's asynchronous T2A: create a task, query it, retrieve and download its result.

Wire format (speech-jobs.md, "MiniMax asynchronous T2A"):

* ``POST /v1/t2a_async_v2`` (JSON: ``model``, ``text`` ≤ 50,000 characters, ``voice_setting``,
  ``audio_setting`` with ``audio_sample_rate`` -- not ``sample_rate`` as in sync T2A --,
  ``language_boost``, ``pronunciation_dict``) → ``task_id``, ``file_id``, ``usage_characters``, ``base_resp``;
* ``GET /v1/query/t2a_async_query_v2?task_id=`` → ``status`` (``processing``, ``success``,
  ``failed``, ``expired``) and ``file_id``; MiniMax allows 10 queries per second per account;
* ``GET /v1/files/retrieve?file_id=`` → ``file.download_url``, valid 9 hours;
* the download: a tar archive with the audio, the sentence subtitles (JSON: ``text``,
  ``time_begin``, ``time_end`` in ms) and an extra-info JSON.

Errors are the same ``base_resp`` codes as sync T2A (`kyma.providers.minimax.codes`).  Creating a
task is never retried after a call whose answer was lost (a timeout, a dropped connection): it
may have been created, and rendering a part twice is what the caller must never do.  An answer
this module does not know (a status it has not seen, no task_id, an archive without audio) is a
`ProviderError`, never a guess.
"""

from __future__ import annotations

import tarfile
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import requests

from kyma.edge import errors
from kyma.providers import SynthesisRequest
from kyma.providers.minimax.codes import (
    STEP_FILE_DOWNLOAD,
    STEP_FILE_RETRIEVE,
    STEP_TASK_CREATE,
    STEP_TASK_QUERY,
    Failure,
)

if TYPE_CHECKING:
    from kyma.providers.minimax.exchange import Exchange

PATH_CREATE = "/v1/t2a_async_v2"
PATH_QUERY = "/v1/query/t2a_async_query_v2"
PATH_RETRIEVE = "/v1/files/retrieve"
MAX_TASK_CHARS = 50_000
PROCESSING, SUCCESS, FAILED, EXPIRED = "processing", "success", "failed", "expired"
TASK_STATUSES = frozenset({PROCESSING, SUCCESS, FAILED, EXPIRED})
AUDIO_EXTENSIONS = {"mp3": (".mp3",), "wav": (".wav",), "pcm": (".pcm", ".raw")}
# The largest member we accept from a result archive (a 50,000-character part at 256 kbps is
# about 100 MB of MP3; WAV at 44.1 kHz about 280 MB).
MAX_MEMBER_BYTES = 400 * 1024 * 1024


@dataclass(frozen=True)
class AsyncTask:
    task_id: str
    file_id: str | None
    usage_characters: int | None
    trace_id: str | None


@dataclass(frozen=True)
class TaskStatus:
    status: str                # PROCESSING | SUCCESS | FAILED | EXPIRED
    file_id: str | None
    trace_id: str | None


@dataclass
class TaskResult:
    audio: bytes
    subtitles: list[dict] = field(default_factory=list)     # [{"text", "time_begin", "time_end"}] in ms
    extra: dict = field(default_factory=dict)


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        return None
    return str(value)


def async_payload(request: SynthesisRequest) -> dict[str, Any]:
    """``/v1/t2a_async_v2``'s JSON for `request`."""
    voice_setting: dict[str, Any] = {"voice_id": request.voice_id, "speed": request.speed, "vol": request.vol,
                                     "pitch": request.pitch}
    if request.emotion:
        voice_setting["emotion"] = request.emotion
    audio_setting: dict[str, Any] = {"audio_sample_rate": request.sample_rate, "format": request.audio_format,
                                     "channel": request.channel}
    if request.audio_format == "mp3":
        audio_setting["bitrate"] = request.bitrate
    payload: dict[str, Any] = {"model": request.model, "text": request.text, "voice_setting": voice_setting,
                               "audio_setting": audio_setting}
    if request.language_boost:
        payload["language_boost"] = request.language_boost
    if request.pronunciation:
        payload["pronunciation_dict"] = {"tone": list(request.pronunciation)}
    return payload


class AsyncT2A:
    """The async calls of one `MiniMaxClient` (its `Exchange`)."""

    def __init__(self, exchange: Exchange) -> None:
        self._http = exchange

    def create(self, request: SynthesisRequest, *, deadline: float) -> AsyncTask:
        if len(request.text) > MAX_TASK_CHARS:
            raise ValueError(f"an async task takes at most {MAX_TASK_CHARS} characters")
        payload = async_payload(request)
        body, trace_id = self._http.post(STEP_TASK_CREATE, PATH_CREATE, deadline, lambda: {"json": payload},
                                         retry_unanswered=False)
        task_id = _id(body.get("task_id"))
        if task_id is None:
            raise self._unknown(STEP_TASK_CREATE, "response has no task_id", trace_id)
        usage = body.get("usage_characters")
        return AsyncTask(task_id, _id(body.get("file_id")),
                         usage if isinstance(usage, int) and not isinstance(usage, bool) else None, trace_id)

    def query(self, task_id: str, *, deadline: float) -> TaskStatus:
        body, trace_id = self._http.post(STEP_TASK_QUERY, PATH_QUERY, deadline,
                                         lambda: {"params": {"task_id": task_id}}, method="GET",
                                         customer_values=False)
        status = body.get("status")
        if not isinstance(status, str) or status.lower() not in TASK_STATUSES:
            raise self._unknown(STEP_TASK_QUERY, f"unknown task status {str(status)[:32]!r}", trace_id)
        status = status.lower()
        file_id = _id(body.get("file_id"))
        if status == SUCCESS and file_id is None:
            raise self._unknown(STEP_TASK_QUERY, "a successful task without file_id", trace_id)
        return TaskStatus(status, file_id, trace_id)

    def download_url(self, file_id: str, *, deadline: float) -> str:
        body, trace_id = self._http.post(STEP_FILE_RETRIEVE, PATH_RETRIEVE, deadline,
                                         lambda: {"params": {"file_id": file_id}}, method="GET",
                                         customer_values=False)
        info = body.get("file")
        url = info.get("download_url") if isinstance(info, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise self._unknown(STEP_FILE_RETRIEVE, "response has no file.download_url", trace_id)
        return url

    def fetch(self, url: str, audio_format: str, *, deadline: float) -> TaskResult:
        """Download the result archive (streamed, never the archive whole in memory) and read its
        audio, subtitles and extra info.  A URL past its 9 hours answers 403/404: `ResultExpired`."""
        timeout = max(0.5, deadline - time.monotonic())
        try:
            response = self._http.session.get(url, stream=True, timeout=(min(5.0, timeout), min(60.0, timeout)))
        except requests.RequestException as exc:
            raise self._http.give_up(Failure(STEP_FILE_DOWNLOAD, f"download failed ({type(exc).__name__})")) from None
        try:
            if response.status_code in (403, 404, 410):
                raise ResultExpired("MiniMax's result file is no longer available (its URL expired).")
            if response.status_code != 200:
                raise self._http.give_up(Failure(STEP_FILE_DOWNLOAD, f"HTTP {response.status_code}",
                                                 http_status=response.status_code))
            response.raw.decode_content = True
            return read_archive(response.raw, audio_format)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise self._http.give_up(Failure(STEP_FILE_DOWNLOAD, f"unreadable archive ({type(exc).__name__})",
                                             retryable=False)) from None
        finally:
            response.close()

    def _unknown(self, step: str, detail: str, trace_id: str | None) -> errors.UpstreamError:
        return self._http.give_up(Failure(step, detail, trace_id=trace_id, http_status=200, retryable=False))


class ResultExpired(errors.ProviderError):
    """MiniMax no longer has the task's result (its 9 hours passed, or it says `expired`)."""


def read_archive(stream: IO[bytes], audio_format: str) -> TaskResult:
    """The audio, subtitles and extra info of a result archive read as a stream (tar, in order)."""
    import json

    audio: bytes | None = None
    subtitles: list[dict] = []
    extra: dict = {}
    extensions = AUDIO_EXTENSIONS[audio_format]
    with tarfile.open(fileobj=stream, mode="r|*") as archive:
        for member in archive:
            if not member.isfile() or member.size > MAX_MEMBER_BYTES:
                continue
            name = member.name.lower()
            handle = archive.extractfile(member)
            if handle is None:
                continue
            if name.endswith(extensions) and audio is None:
                audio = handle.read()
            elif name.endswith((".json", ".titles", ".extra")):
                try:
                    data = json.loads(handle.read())
                except ValueError:
                    continue
                if isinstance(data, list):
                    subtitles = [s for s in data if isinstance(s, dict)]
                elif isinstance(data, dict):
                    extra = data
    if not audio:
        raise tarfile.TarError("no audio of the requested format in the archive")
    return TaskResult(audio, subtitles, extra)
