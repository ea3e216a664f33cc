"""`make invoke FUNCTION=<logical id> EVENT=events/<file>.json`: one handler, one event,
against the local stack (like `sam local invoke`, without Docker).

If `make run` is up, the handler uses its embedded AWS (same tables, same
data).  Otherwise an ephemeral embedded AWS is started for this one call,
with the demo account (acct_demo, $50.00) the events refer to.

`{{KYMA_API_KEY}}` in an event is replaced by $KYMA_API_KEY, or by the
ephemeral demo account's key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from pathlib import Path

from kyma_local.aws import EmbeddedAws, create_resources, local_environment
from kyma_local.runtime import FunctionPool
from kyma_local.stack import DEMO_ACCOUNT_ID, DEMO_BALANCE_MICROS, STATE_FILE
from kyma_local.template import Template


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
        from kyma.accounts import Accounts
        from kyma.aws import dynamodb
        from kyma.config import config

        api_key = api_key or Accounts(dynamodb(), config()).create(
            DEMO_BALANCE_MICROS, account_id=DEMO_ACCOUNT_ID).api_key
        print(f"(ephemeral embedded AWS at {aws.endpoint}, demo account {DEMO_ACCOUNT_ID})", file=sys.stderr)

    event = json.loads(args.event.read_text().replace("{{KYMA_API_KEY}}", api_key))
    result = FunctionPool(template.functions[args.function]).invoke(event)
    if result.error:
        print(json.dumps({"errorType": result.error, "errorMessage": result.error_message}, indent=2))
        return 1
    print(json.dumps(result.payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
