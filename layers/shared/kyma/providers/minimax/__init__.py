"""The MiniMax client: voice cloning, speech (whole or streamed) and voice management over HTTPS.

Wire format: ``/work/shared/reference/minimax-upstream.md``.  Calls:

* ``POST /v1/files/upload`` (multipart, streamed) -> ``file.file_id``
* ``POST /v1/voice_clone`` (JSON) registers the file under our ``voice_id``
* ``POST /v1/voice_design`` (JSON) designs a voice from a prompt under our ``voice_id``
  -> ``trial_audio`` (the preview, hex)
* ``POST /v1/t2a_v2`` (JSON, ``output_format: "hex"``) -> ``data.audio``; with
  ``stream: true`` Server-Sent Events, one ``data: {json}`` per audio chunk
* ``POST /v1/get_voice`` / ``POST /v1/delete_voice``

Modules:

* `client` -- `MiniMaxClient`, the calls and the fields they need from the answers;
* `exchange` -- one HTTP exchange within the caller's deadline, retries with jittered
  backoff (`RetryPolicy`), the API key, the log of every failed attempt;
* `codes` -- MiniMax's error table: what each answer means in `kyma.edge.errors` terms (`classify`);
* `stream` -- `SpeechStream`, a streamed synthesis read chunk by chunk;
* `upload` -- the clone reference's streamed multipart body, sent in large blocks.

Secrets: the API key is sent only in the ``Authorization`` header and scrubbed
from anything MiniMax echoes back; neither the key nor audio is ever logged.
Everything logs on ``kyma.providers.minimax``.

Import cost is kept low for Lambda cold starts: only ``requests`` and the
toolbelt's multipart encoder besides the standard library.
"""

from kyma.providers.minimax.client import MiniMaxClient
from kyma.providers.minimax.codes import (
    CAPACITY_CODES,
    CONTENT_REJECTED_CODES,
    DUPLICATE_VOICE_ID,
    INVALID_PARAMETER_CODES,
    OPERATOR_CODES,
    REFERENCE_REJECTED_CODES,
    RETRYABLE_CODES,
    VOICE_MISSING_CODES,
    classify,
)
from kyma.providers.minimax.exchange import MIN_TIME_LEFT, NO_RETRY, RetryPolicy
from kyma.providers.minimax.stream import SpeechStream

__all__ = [
    "CAPACITY_CODES", "CONTENT_REJECTED_CODES", "DUPLICATE_VOICE_ID", "INVALID_PARAMETER_CODES", "MIN_TIME_LEFT",
    "NO_RETRY", "OPERATOR_CODES", "REFERENCE_REJECTED_CODES", "RETRYABLE_CODES", "VOICE_MISSING_CODES",
    "MiniMaxClient", "RetryPolicy", "SpeechStream", "classify",
]
