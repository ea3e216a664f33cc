"""The MiniMax sandbox: one stand-in for MiniMax, over HTTP, for the local stack and the tests.

* `server` -- `MiniMaxSandbox`: its life cycle, test controls and the dispatch of each request;
* `wire` -- MiniMax's paths, status codes and ``base_resp`` envelope; `RecordedCall`;
* `transport` -- the HTTP plumbing: threaded server, reading requests, writing answers;
* `validation` -- every request body checked like MiniMax checks it;
* `endpoints` -- upload, voice_clone, voice_design, get_voice, delete_voice over the sandbox's account;
* `speech` -- t2a_v2, whole or streamed (Server-Sent Events, paced);
* `failures` -- failure injection (Python, or over HTTP through `control`);
* `control` -- the loopback-only HTTP control endpoint, and a small client for it;
* `audio` -- the deterministic, playable audio it answers with, and its stream chunks;
* `catalog` -- real MiniMax system voice ids (`get_voice`);
* `voices` -- cloned and designed voices and the 7-day rule.

None of this ships in the Lambda layer: the deployed functions only have the real
client (`kyma.providers.minimax`), which `make run` points at this server.
"""

from kyma_local.sandbox.failures import Rule
from kyma_local.sandbox.server import MiniMaxSandbox, sandbox
from kyma_local.sandbox.wire import (
    PATH_CLONE,
    PATH_DELETE_VOICE,
    PATH_DESIGN,
    PATH_GET_VOICE,
    PATH_T2A,
    PATH_UPLOAD,
    PATHS,
    RecordedCall,
)

__all__ = ["PATHS", "PATH_CLONE", "PATH_DELETE_VOICE", "PATH_DESIGN", "PATH_GET_VOICE", "PATH_T2A", "PATH_UPLOAD",
           "MiniMaxSandbox", "RecordedCall", "Rule", "sandbox"]
