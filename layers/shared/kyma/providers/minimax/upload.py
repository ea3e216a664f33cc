"""Uploading the clone reference: a streamed multipart body that stops at the deadline.

``POST /v1/files/upload`` takes ``purpose=voice_clone`` and the file.  The body is
streamed by requests-toolbelt's encoder (never copied whole), in large send
blocks (`new_session`, the client's session); its monitor raises
`DeadlinePassed` as soon as the deadline passes while sending.
"""

from __future__ import annotations

import io
import time
from typing import Any

import requests
from requests_toolbelt.multipart.encoder import MultipartEncoder, MultipartEncoderMonitor

from kyma.providers.minimax.exchange import DeadlinePassed

# Bodies are sent in 256 KiB blocks: with urllib3's default 16 KiB, streaming a 4 MB
# reference costs ~257 encoder reads, most of the upload's CPU (bench/results.md).
SEND_BLOCK_BYTES = 256 << 10

_MIME_BY_EXTENSION = {
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "mp4": "audio/mp4",
    "aac": "audio/aac",
    "wav": "audio/wav",
    "wave": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/opus",
    "webm": "audio/webm",
}


def mime_type(filename: str) -> str:
    _, dot, ext = filename.rpartition(".")
    if not dot:
        return "application/octet-stream"
    return _MIME_BY_EXTENSION.get(ext.lower(), "application/octet-stream")


def reference_upload(audio: bytes, filename: str, deadline: float) -> dict[str, Any]:
    """The keyword arguments of one upload attempt (build one per attempt: the body is read once)."""
    encoder = MultipartEncoder(fields={
        "purpose": "voice_clone",
        "file": (filename, io.BytesIO(audio), mime_type(filename)),
    })

    def watch(_monitor: MultipartEncoderMonitor) -> None:
        if time.monotonic() > deadline:
            raise DeadlinePassed()

    body = MultipartEncoderMonitor(encoder, watch)
    return {"data": body, "headers": {"Content-Type": body.content_type}}


class _LargeBlockAdapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["blocksize"] = SEND_BLOCK_BYTES
        super().init_poolmanager(*args, **kwargs)


def new_session() -> requests.Session:
    session = requests.Session()
    # No proxy/netrc lookups in the environment on every call: Lambda needs none, and
    # the MiniMax key must never be replaced by credentials from a netrc file.
    session.trust_env = False
    session.mount("https://", _LargeBlockAdapter())
    session.mount("http://", _LargeBlockAdapter())
    return session
