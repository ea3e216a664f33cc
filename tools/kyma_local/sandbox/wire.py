"""MiniMax's wire format, as the sandbox speaks it: paths, status codes, the ``base_resp`` envelope.

It follows ``/work/shared/reference/minimax-upstream.md``: ``trace_id`` in the body
and the ``Trace-Id`` header, and HTTP 200 with a non-zero ``base_resp.status_code``
for errors (`Reject`; a missing or wrong bearer token is 200 + 1004).  A
`RecordedCall` is what the sandbox remembers of each request it received.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from requests.structures import CaseInsensitiveDict

PATH_UPLOAD = "/v1/files/upload"
PATH_CLONE = "/v1/voice_clone"
PATH_DESIGN = "/v1/voice_design"
PATH_T2A = "/v1/t2a_v2"
PATH_GET_VOICE = "/v1/get_voice"
PATH_DELETE_VOICE = "/v1/delete_voice"
PATH_ASYNC_CREATE = "/v1/t2a_async_v2"
PATH_ASYNC_QUERY = "/v1/query/t2a_async_query_v2"
PATH_FILE_RETRIEVE = "/v1/files/retrieve"
PATHS = (PATH_UPLOAD, PATH_CLONE, PATH_DESIGN, PATH_T2A, PATH_GET_VOICE, PATH_DELETE_VOICE, PATH_ASYNC_CREATE,
         PATH_ASYNC_QUERY, PATH_FILE_RETRIEVE)
GET_PATHS = (PATH_ASYNC_QUERY, PATH_FILE_RETRIEVE)
FILES_PREFIX = "/__files/"           # where download_url points (MiniMax's file storage)
CONTROL_PREFIX = "/__sandbox/"

DEFAULT_API_KEY = "test-minimax-key"

# base_resp.status_msg per code (MiniMax's error table, minimax-upstream.md §6).
STATUS_MESSAGES = {
    0: "success",
    1000: "unknown error",
    1001: "request timeout",
    1002: "rate limit exceeded",
    1004: "login fail: Please carry the API secret key in the 'Authorization' field of the request header",
    1008: "insufficient balance",
    1013: "internal service error",
    1024: "internal error",
    1026: "input new_sensitive",
    1027: "output new_sensitive",
    1033: "system error",
    1039: "token limit exceeded",
    1041: "conn limit exceeded",
    1042: "invisible characters exceed 10% of the text",
    1043: "asr similarity check failed",
    1044: "clone prompt similarity check failed",
    2013: "invalid params",
    20132: "invalid samples or voice_id",
    2037: "voice clip duration too short or too long",
    2038: "no voice clone permission",
    2039: "voice id already exists",
    2042: "no access to this voice_id",
    2045: "rate growth limit exceeded",
    2048: "prompt audio too long",
    2049: "invalid api key",
    2056: "usage limit exceeded",
}
OFFICIAL_CODES = frozenset(STATUS_MESSAGES) - {0}


class Reject(Exception):
    """Answer the call with HTTP 200 and this ``base_resp`` code (and message)."""

    def __init__(self, code: int, msg: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.msg = msg or STATUS_MESSAGES.get(code, "error")


def base_resp(code: int, msg: str | None = None) -> dict:
    return {"status_code": code, "status_msg": msg if msg is not None
            else STATUS_MESSAGES.get(code, "error")}


def error_body(code: int, msg: str, trace_id: str) -> dict:
    return {"trace_id": trace_id, "base_resp": base_resp(code, msg)}


@dataclass
class RecordedCall:
    """One request the sandbox received (recorded before it is answered)."""

    method: str
    path: str
    headers: CaseInsensitiveDict
    json: Any = None                 # parsed JSON body
    multipart: dict | None = None    # upload: purpose, filename, content_type, size, sha256, file
    body_size: int = 0
    body_text: str = ""              # the JSON body as sent, or the upload's fields (for `match=`)
    timestamp: float = 0.0           # time.time()
    monotonic: float = 0.0           # time.monotonic()
    client_port: int = 0             # the same port twice = a reused connection
    trace_id: str = ""
    injected: str | None = None      # the failure mode used on this call, if any
    http_status: int | None = None   # filled in when answered
    status_code: int | None = None   # base_resp.status_code answered, if any
    stream: bool = False             # a streamed t2a_v2 answer (Server-Sent Events)
    chunks_sent: int = 0             # audio events written (streamed calls)
    chunk_times: list[float] = field(default_factory=list)   # time.monotonic() of each audio event
    finished: bool = False           # the final status-2 event was written
    client_closed: bool = False      # the client went away mid-answer

    def __getitem__(self, name: str) -> Any:  # dict-style access for convenience
        return getattr(self, name)

    @property
    def file_bytes(self) -> bytes | None:
        return self.multipart.get("file") if self.multipart else None

    def summary(self) -> dict[str, Any]:
        """What the HTTP control endpoint reports (no bodies, no headers)."""
        return {"method": self.method, "path": self.path, "trace_id": self.trace_id,
                "http_status": self.http_status, "status_code": self.status_code,
                "injected": self.injected, "stream": self.stream, "chunks_sent": self.chunks_sent,
                "finished": self.finished, "client_closed": self.client_closed,
                "timestamp": self.timestamp, "json": self.json if self.path != PATH_UPLOAD else None}
