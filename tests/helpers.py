"""Test helpers: API Gateway events as the local gateway builds them, response readers, and
recording stand-ins for the functions behind the local gateway."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

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


class Recorder:
    """Stands in for a FunctionPool: records events, answers what the test says."""

    def __init__(self, answer=None, error=None, error_message=""):
        self.events: list[dict] = []
        self.answer = answer
        self.error, self.error_message = error, error_message

    def invoke(self, event):
        self.events.append(event)
        answer = self.answer(event) if callable(self.answer) else self.answer
        return InvokeResult(answer, self.error, self.error_message)


def allow(account_id="acct_1"):
    return Recorder(lambda e: {
        "principalId": account_id, "context": {"account_id": account_id},
        "policyDocument": {"Version": "2012-10-17", "Statement": [{
            "Action": "execute-api:Invoke", "Effect": "Allow",
            "Resource": e["methodArn"].rsplit("/", 3)[0] + "/*/*"}]}})
