"""`make invoke FUNCTION=<logical id> EVENT=events/<file>.json`: one handler, one event,
against the local stack (like `sam local invoke`, without Docker).

If `make run` is up, the handler uses its embedded AWS (same tables, same
data).  Otherwise an ephemeral embedded AWS is started for this one call,
with the demo account (acct_demo, $50.00) the events refer to.

`{{KYMA_API_KEY}}` in an event is replaced by $KYMA_API_KEY, or by the
ephemeral demo account's key.

A Lambda Web Adapter function (SpeechFunction) gets the event as the adapter would
pass it to its app; its (streamed) response is printed in the proxy-response shape
once complete, a binary body base64-encoded.

MiniMax: with MINIMAX_API_KEY set, the real one; otherwise the running stack's
MiniMax sandbox (so voices cloned through `make run` are known), or an
ephemeral sandbox for this one call.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import sys
import urllib.request
from pathlib import Path

from kyma_local.aws import EmbeddedAws, create_resources, local_environment, real_minimax_key, upstream_environment
from kyma_local.runtime import FunctionPool
from kyma_local.sandbox import MiniMaxSandbox
from kyma_local.stack import DEMO_ACCOUNT_ID, DEMO_BALANCE_MICROS, STATE_FILE
from kyma_local.template import Function, Template
from kyma_local.web_adapter import WebAdapterPool


def _running_stack() -> dict | None:
    if not STATE_FILE.exists():
        return None
    state = json.loads(STATE_FILE.read_text())
    try:
        urllib.request.urlopen(state["aws_endpoint"] + "/moto-api/", timeout=1)
    except OSError:
        return None
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kyma-invoke", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("function", help="logical id in template.yaml, e.g. AccountFunction")
    parser.add_argument("event", type=Path, help="event file, e.g. events/account-balance.json")
    args = parser.parse_args(argv)

    template = Template()
    if args.function not in template.functions:
        parser.error(f"unknown function {args.function}; one of: {', '.join(template.functions)}")
    aws = EmbeddedAws()
    state = _running_stack()
    api_key = os.environ.get("KYMA_API_KEY", "")
    if state:
        aws.endpoint = state["aws_endpoint"]
        print(f"(using the running local stack's AWS at {aws.endpoint})", file=sys.stderr)
        os.environ.update(local_environment(template, aws))
    else:
        aws.start()
        os.environ.update(local_environment(template, aws))
        create_resources(template, endpoint_url=aws.endpoint)
        from kyma.accounts.store import Accounts
        from kyma.platform.aws import dynamodb
        from kyma.platform.config import config

        api_key = api_key or Accounts(dynamodb(), config()).create(
            DEMO_BALANCE_MICROS, account_id=DEMO_ACCOUNT_ID).api_key
        print(f"(ephemeral embedded AWS at {aws.endpoint}, demo account {DEMO_ACCOUNT_ID})", file=sys.stderr)

    sandbox = None
    if real_minimax_key():
        os.environ.update(upstream_environment())
    elif state and state.get("sandbox"):
        os.environ.update(upstream_environment(state["sandbox"]["url"], state["sandbox"]["api_key"]))
    else:
        sandbox = MiniMaxSandbox.from_env(api_key=f"sandbox-{secrets.token_hex(12)}").start()
        os.environ.update(upstream_environment(sandbox.base_url, sandbox.api_key))
        print(f"(ephemeral MiniMax sandbox at {sandbox.base_url})", file=sys.stderr)
    from kyma.platform.config import config
    from kyma.providers.select import provider

    config.cache_clear()            # read again, with MiniMax's address and key
    provider.cache_clear()

    event = json.loads(args.event.read_text().replace("{{KYMA_API_KEY}}", api_key))
    function = template.functions[args.function]
    try:
        if function.web_adapter:
            print(json.dumps(_invoke_web_app(function, event), indent=2))
            return 0
        result = FunctionPool(function).invoke(event)
    finally:
        if sandbox is not None:
            sandbox.stop()
    if result.error:
        print(json.dumps({"errorType": result.error, "errorMessage": result.error_message}, indent=2))
        return 1
    print(json.dumps(result.payload, indent=2))
    return 0


def _invoke_web_app(function: Function, event: dict) -> dict:
    pool = WebAdapterPool(function)
    try:
        app = pool.invoke_stream(event, wait=function.timeout)
        body, complete = b"", False
        try:
            while data := app.read(function.timeout):
                body += data
            complete = True
        except (OSError, http.client.HTTPException):
            pass                    # the stream was cut: printed as far as it came
        finally:
            app.close(reusable=False)
    finally:
        pool.close()
    headers = dict(app.headers)
    text = headers.get("Content-Type", "").startswith(("application/json", "text/"))
    return {"statusCode": app.status, "headers": headers, "isBase64Encoded": not text,
            "body": body.decode() if text else base64.b64encode(body).decode(), "complete": complete}


if __name__ == "__main__":
    sys.exit(main())
