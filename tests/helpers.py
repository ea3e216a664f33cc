"""Test helpers: API Gateway events as the local gateway builds them, response readers,
recording stand-ins for the functions behind the local gateway, and the books' invariants
that every money test asserts."""

from __future__ import annotations

import base64
import http.client
import json
import time
from types import SimpleNamespace

from requests_toolbelt.multipart.encoder import MultipartEncoder

from kyma.platform.dynamo import from_item, values
from kyma_local.gateway import build_event
from kyma_local.runtime import InvokeResult, LambdaContext


def api_event(method: str, path: str, *, resource: str | None = None, body: bytes | str = b"",
              headers: dict[str, str] | None = None, account_id: str | None = None,
              binary: bool = True, query: str = "") -> dict:
    """A REST proxy event.  Binary (base64) by default, as `*/*` BinaryMediaTypes makes every body."""
    raw = body.encode() if isinstance(body, str) else body
    return build_event(method, path, resource or path, list((headers or {}).items()), query, raw,
                       binary=binary,
                       authorizer={"account_id": account_id, "principalId": account_id} if account_id else None)


def context(name: str = "TestFunction", timeout: int = 29) -> LambdaContext:
    return LambdaContext(name, 512, timeout)


def lwa_call(pool, event: dict, *, wait: float = 60.0) -> dict:
    """An event through a Lambda Web Adapter function (kyma_local.web_adapter.WebAdapterPool), its
    response read to the end as API Gateway's streaming integration reads it, returned in the
    proxy-response shape the other helpers read, plus what only a stream has:
    `chunks` [(arrival, bytes)] and `complete` (False: the body ended without its last chunk).
    Text (JSON, events) comes as text, anything else base64-encoded (isBase64Encoded)."""
    app = pool.invoke_stream(event, wait=wait)
    chunks: list[tuple[float, bytes]] = []
    complete = False
    try:
        while data := app.read(wait):
            chunks.append((time.monotonic(), data))
        complete = True
    except (OSError, http.client.HTTPException):
        pass                                    # cut: the connection closed before the last chunk
    finally:
        app.close(reusable=complete)
    headers = dict(app.headers)
    body = b"".join(c for _, c in chunks)
    textual = headers.get("Content-Type", "").startswith(("application/json", "text/"))
    return {"statusCode": app.status, "headers": headers, "isBase64Encoded": not textual,
            "body": body.decode() if textual else base64.b64encode(body).decode(),
            "chunks": chunks, "complete": complete}


def sse_events(response: dict) -> list[dict]:
    """The `data:` events of a text/event-stream response, parsed."""
    return [json.loads(line[len("data: "):]) for line in response["body"].split("\n")
            if line.startswith("data: ")]


def body_of(response: dict):
    """Decoded body of a proxy response: JSON as an object, binary as bytes."""
    if response.get("isBase64Encoded"):
        return base64.b64decode(response["body"])
    text = response.get("body") or ""
    try:
        return json.loads(text)
    except ValueError:
        return text


def error_of(response: dict) -> SimpleNamespace:
    """(status, code, message) of an error response; fails loudly if it is not the envelope."""
    payload = body_of(response)
    assert set(payload) == {"error"}, payload
    assert set(payload["error"]) == {"code", "message"}, payload
    return SimpleNamespace(status=response["statusCode"], code=payload["error"]["code"],
                           message=payload["error"]["message"])


class ProcessDied(BaseException):
    """A killed process, as a test sees it: not an Exception, so no handler code catches it."""


def raising(exc: BaseException):
    """A stand-in for a method or function that fails with `exc`, whatever it is called with."""
    def fail(*args, **kwargs):
        raise exc
    return fail


def powertools_records(ddb, cfg) -> list[dict]:
    """The Idempotency table's Powertools records (not the charge guards kept beside them)."""
    return [item for item in ddb.scan(TableName=cfg.idempotency_table)["Items"]
            if not item["id"]["S"].startswith("guard#")]


# ── voice-clone requests ─────────────────────────────────────────────────
def multipart(fields: list) -> tuple[bytes, str]:
    encoder = MultipartEncoder(fields=fields)
    return encoder.to_string(), encoder.content_type


def clone_event(account_id: str, audio: bytes | None = None, *, filename: str = "reference.mp3",
                part_type: str = "audio/mpeg", name: str | None = None, model: str | None = None,
                fields: list | None = None, headers: dict | None = None) -> dict:
    """POST /v1/audio/voice-clone as API Gateway delivers it (multipart, base64)."""
    if fields is None:
        fields = []
        if audio is not None:
            fields.append(("file", (filename, audio, part_type)))
        if name is not None:
            fields.append(("name", name))
        if model is not None:
            fields.append(("model", model))
    body, ctype = multipart(fields) if fields else (b"", "multipart/form-data; boundary=x")
    return api_event("POST", "/v1/audio/voice-clone", body=body, account_id=account_id,
                     headers={"Content-Type": ctype, **(headers or {})})


def design_event(account_id: str, body: dict | bytes | str | None = None, *, headers: dict | None = None) -> dict:
    """POST /v1/audio/voice-design as API Gateway delivers it (JSON, base64)."""
    if body is None:
        body = {"description": "A warm female narrator, slight British accent, calm."}
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return api_event("POST", "/v1/audio/voice-design", body=raw, account_id=account_id,
                     headers={"Content-Type": "application/json", **(headers or {})})


# ── the books ────────────────────────────────────────────────────────────
START = 50_000_000          # the usual opening balance in tests: $50.00
SYSTEM_VOICE = "English_expressive_narrator"


def voices_of(ddb, cfg, owner: str) -> set[str]:
    page = ddb.query(TableName=cfg.voices_table, IndexName="ByOwner",
                     KeyConditionExpression="owner_id = :o", ExpressionAttributeValues=values(o=owner))
    return {from_item(i)["voice_id"] for i in page["Items"]}


def assert_books_balance(books, ddb, cfg, account: str) -> dict:
    """The invariants: balance = top-ups − charges − open holds ≥ 0, and a voice row
    exists for exactly the charged clones and designs."""
    audit = books.audit(account)
    assert audit["consistent"], audit
    charged = {e["voice_id"] for e in books.entries(account)
               if e.get("kind") in ("voice_clone", "voice_design") and e["status"] == "charged"}
    assert voices_of(ddb, cfg, account) == charged
    return audit


class Recorder:
    """Stands in for a FunctionPool (or a WebAdapterPool, for streamed routes): records events,
    answers what the test says."""

    def __init__(self, answer=None, error=None, error_message=""):
        self.events: list[dict] = []
        self.answer = answer
        self.error, self.error_message = error, error_message

    def invoke(self, event):
        self.events.append(event)
        answer = self.answer(event) if callable(self.answer) else self.answer
        return InvokeResult(answer, self.error, self.error_message)

    def invoke_stream(self, event, *, wait, on_connect=None):
        from kyma_local.web_adapter import InvocationFailed

        self.events.append(event)
        if self.error:
            raise InvocationFailed(self.error_message)
        return _Streamed(self.answer(event) if callable(self.answer) else self.answer)


class _Streamed:
    """A recorded proxy answer as a streaming app's response (what kyma_local's gateway reads of
    kyma_local.web_adapter.AppResponse)."""

    def __init__(self, answer: dict) -> None:
        self.status = answer["statusCode"]
        self.headers = list((answer.get("headers") or {}).items())
        body = answer.get("body") or ""
        self._body = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
        self.deadline = time.monotonic() + 30

    def read(self, timeout: float) -> bytes:
        data, self._body = self._body, b""
        return data

    def close(self, *, reusable: bool) -> None:
        pass


def allow(account_id="acct_1"):
    return Recorder(lambda e: {
        "principalId": account_id, "context": {"account_id": account_id},
        "policyDocument": {"Version": "2012-10-17", "Statement": [{
            "Action": "execute-api:Invoke", "Effect": "Allow",
            "Resource": e["methodArn"].rsplit("/", 3)[0] + "/*/*"}]}})
