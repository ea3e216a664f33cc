"""The MiniMax sandbox: one stand-in for MiniMax, over HTTP, for the local stack and the tests.

* `server` -- `MiniMaxSandbox`, the HTTP server speaking MiniMax's wire format, with
  failure injection (Python and a loopback-only HTTP control endpoint);
* `audio` -- the deterministic, playable audio it answers with, and its stream chunks;
* `catalog` -- real MiniMax system voice ids (`get_voice`);
* `voices` -- cloned voices and the 7-day rule;
* `control` -- a small client for the HTTP control endpoint (e.g. from e2e tests).

None of this ships in the Lambda layer: the deployed functions only have the real
client (`kyma.providers.minimax`), which `make run` points at this server.
"""

from kyma_local.sandbox.server import (
    PATH_CLONE,
    PATH_DELETE_VOICE,
    PATH_GET_VOICE,
    PATH_T2A,
    PATH_UPLOAD,
    PATHS,
    MiniMaxSandbox,
    RecordedCall,
    Rule,
    sandbox,
)

__all__ = ["PATHS", "PATH_CLONE", "PATH_DELETE_VOICE", "PATH_GET_VOICE", "PATH_T2A", "PATH_UPLOAD",
           "MiniMaxSandbox", "RecordedCall", "Rule", "sandbox"]
