"""kyma-admin: operate accounts, keys and balances.

Target selection (first that applies):
  --stack-name NAME     a deployed stack: table names from its CloudFormation outputs
  --accounts-table ...  explicit table names (all four: accounts, api keys, ledger, voices)
  (nothing)             the local stack started by `make run` (.kyma-local.json)

`failures` needs a stack or the local stack (its queues and functions come from there).

Every balance change is a ledger entry: top-ups are written in the same
transaction as the balance update.  API keys are printed once and stored only
as SHA-256 hashes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import urllib.request
from datetime import UTC, datetime

from kyma.edge.errors import ApiError
from kyma_admin.failures import FailureQueue, lambda_invoker, local_invoker, redrive, show
from kyma_local.state import STATE_FILE


@dataclasses.dataclass
class Target:
    accounts_table: str
    api_keys_table: str
    ledger_table: str
    voices_table: str
    describe: str
    rest_api_id: str = ""
    stage: str = ""
    control_url: str = ""       # local stack only: flushes its authorizer cache, runs schedules
    failure_queues: list[FailureQueue] = dataclasses.field(default_factory=list)
    rate_counters_table: str = ""   # a key's month (kyma-admin keys); a stack from before it has none


def stack_failure_queues(out: dict[str, str]) -> list[FailureQueue]:
    """The failure queues a deployed stack outputs (none from a stack deployed before they were)."""
    queues = [("reconciler failures", "ReconcilerFailureQueueUrl", "ReconcilerFunctionName", True),
              ("activation failures", "ActivationFailuresQueueUrl", "VoiceActivationFunctionName", False)]
    return [FailureQueue(label, out[url], out[fn], with_event) for label, url, fn, with_event in queues
            if url in out and fn in out]


def local_failure_queues(queue_names: dict[str, str]) -> list[FailureQueue]:
    import boto3

    sqs = boto3.client("sqs")
    url = {k: sqs.get_queue_url(QueueName=name)["QueueUrl"] for k, name in queue_names.items()}
    return [FailureQueue("reconciler failures", url["ReconcilerFailureQueue"], "ReconcilerFunction", True),
            FailureQueue("activation failures", url["ActivationFailuresQueue"], "VoiceActivationFunction", False)]


def resolve_target(args: argparse.Namespace) -> Target:
    if args.stack_name:
        import boto3

        stack = boto3.client("cloudformation").describe_stacks(StackName=args.stack_name)["Stacks"][0]
        out = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        params = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
        return Target(out["AccountsTableName"], out["ApiKeysTableName"], out["LedgerTableName"],
                      out["VoicesTableName"], f"stack {args.stack_name}", out.get("RestApiId", ""),
                      params.get("Stage", ""), failure_queues=stack_failure_queues(out),
                      rate_counters_table=out.get("RateCountersTableName", ""))
    if args.accounts_table:
        missing = [n for n in ("api_keys_table", "ledger_table", "voices_table") if not getattr(args, n)]
        if missing:
            sys.exit(f"kyma-admin: with --accounts-table also give --{missing[0].replace('_', '-')}")
        return Target(args.accounts_table, args.api_keys_table, args.ledger_table, args.voices_table,
                      "explicit tables", rate_counters_table=args.rate_counters_table or "")
    if not STATE_FILE.exists():
        sys.exit("kyma-admin: no target. Start the local stack (make run), or pass --stack-name "
                 "or --accounts-table/--api-keys-table/--ledger-table/--voices-table.")
    state = json.loads(STATE_FILE.read_text())
    os.environ.update({"AWS_ENDPOINT_URL": state["aws_endpoint"], "AWS_ACCESS_KEY_ID": "local",
                       "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": state["region"]})
    t = state["tables"]
    return Target(t["AccountsTable"], t["ApiKeysTable"], t["LedgerTable"], t["VoicesTable"],
                  f"local stack {state['api_url']}", control_url=state["control_url"],
                  failure_queues=local_failure_queues(state["queues"]) if args.command == "failures" else [],
                  rate_counters_table=t.get("RateCountersTable", ""))


def services(target: Target):
    import boto3

    from kyma.accounts.store import Accounts
    from kyma.billing.accounting import Books
    from kyma.billing.ledger import Ledger
    from kyma.platform.config import Config

    cfg = dataclasses.replace(Config.from_env({}), accounts_table=target.accounts_table,
                              api_keys_table=target.api_keys_table, ledger_table=target.ledger_table,
                              voices_table=target.voices_table, rate_counters_table=target.rate_counters_table)
    ddb = boto3.client("dynamodb")
    return Accounts(ddb, cfg), Ledger(ddb, cfg), Books(ddb, cfg)


def flush_authorizer_cache(target: Target) -> str:
    """Revocation must not wait for the authorizer cache (up to 300 s) to expire."""
    if target.control_url:
        req = urllib.request.Request(target.control_url + "authorizer-cache", method="DELETE")
        urllib.request.urlopen(req, timeout=5)
        return "local authorizer cache flushed"
    if target.rest_api_id and target.stage:
        import boto3

        boto3.client("apigateway").flush_stage_authorizers_cache(restApiId=target.rest_api_id,
                                                                 stageName=target.stage)
        return f"authorizer cache of stage {target.stage} flushed"
    return "authorizer cache not flushed (no API known): revocation takes effect within 300 s"


def main(argv: list[str] | None = None) -> int:
    from kyma.billing.money import usd_to_micros

    def usd(text: str) -> int:
        try:
            value = usd_to_micros(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
        if value <= 0:
            raise argparse.ArgumentTypeError("amount must be positive")
        return value

    parser = argparse.ArgumentParser(prog="kyma-admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack-name")
    for name in ("accounts", "api-keys", "ledger", "voices", "rate-counters"):
        parser.add_argument(f"--{name}-table")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create-account", help="new account with a balance; prints its API key once")
    p.add_argument("--balance", type=usd, required=True, metavar="USD")
    p.add_argument("--label", default="")
    p = sub.add_parser("top-up", help="add funds (a ledger entry)")
    p.add_argument("account")
    p.add_argument("amount", type=usd, metavar="USD")
    p.add_argument("--note", default="")
    p = sub.add_parser("balance", help="current balance")
    p.add_argument("account")
    p = sub.add_parser("ledger", help="ledger entries and the balance audit")
    p.add_argument("account")
    p = sub.add_parser("audit", help="every account's books: balance = top-ups + refunds - charges - open holds, "
                                     "no hold open past its window; exit 1 and the accounts on any mismatch")
    p = sub.add_parser("set-limits", help="an account's own rate limit for one endpoint (also flushes the "
                                          "authorizer cache)")
    p.add_argument("account")
    p.add_argument("endpoint", help="speech, voice-clone, voice-design, uploads, voices or account; or, with "
                                    "--concurrent, speech_stream or job (requests in flight at once)")
    p.add_argument("--per-minute", type=int)
    p.add_argument("--burst", type=int, help="requests per second at most")
    p.add_argument("--concurrent", type=int, help="requests of this kind in flight at once (default 10 streamed "
                                                   "speech, 3 jobs); over it: 429 too_many_concurrent")
    p = sub.add_parser("keys", help="an account's keys (never the keys themselves): id, name, scopes, monthly "
                                    "limit and spend, status")
    p.add_argument("account")
    p = sub.add_parser("failures", help="the failure queues (reconciler runs, activation batches Lambda gave up "
                                        "on): each message; --redrive runs the work again and deletes what it covered")
    p.add_argument("--redrive", action="store_true",
                   help="rerun the reconciler / the activation sweep once per non-empty queue; on success delete "
                        "the messages it covered (exit 1 if any are left)")
    p = sub.add_parser("issue-key", help="an additional API key for an account")
    p.add_argument("account")
    p = sub.add_parser("revoke-key", help="revoke one key, or every key of an account")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--key", help="the API key to revoke (read from stdin if '-')")
    group.add_argument("--account", help="revoke all keys of this account (or, with --key-id, one of them)")
    p.add_argument("--key-id", help="with --account: revoke this key_ (as `kyma-admin keys` lists it); the "
                                    "operator may revoke an account's last key that can manage keys")
    args = parser.parse_args(argv)

    target = resolve_target(args)
    accounts, ledger, books = services(target)
    try:
        return _run(args, target, accounts, ledger, books)
    except ApiError as exc:
        print(f"kyma-admin: {exc.message}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, target: Target, accounts, ledger, books) -> int:
    from kyma.accounts.customer_keys import CustomerKeys
    from kyma.billing.money import micros_to_header

    if args.command == "create-account":
        new = accounts.create(args.balance, label=args.label)
        print(f"account_id={new.account_id}")
        print(f"KYMA_API_KEY={new.api_key}")
        print(f"balance_usd={micros_to_header(args.balance)}  ({target.describe}; the key is shown only now)",
              file=sys.stderr)
    elif args.command == "top-up":
        ledger.top_up(args.account, args.amount, note=args.note)
        balance = books.balance(args.account)
        print(f"{args.account}: +{micros_to_header(args.amount)} USD, balance {micros_to_header(balance)} USD")
    elif args.command == "balance":
        print(f"{args.account}: {micros_to_header(books.balance(args.account))} USD")
    elif args.command == "ledger":
        print(f"{'time (UTC)':20} {'type':6} {'kind':12} {'status':9} {'amount USD':>12}  reference")
        for e in books.entries(args.account):
            when = datetime.fromtimestamp(e.get("created_at", 0), UTC).strftime("%Y-%m-%d %H:%M:%S")
            ref = e.get("voice_id") or e.get("note") or (f"{e['chars']} chars" if "chars" in e else "")
            print(f"{when:20} {e.get('type', ''):6} {e.get('kind', '-'):12} {e.get('status', ''):9} "
                  f"{micros_to_header(e['amount_micros']):>12}  {ref}")
        audit = books.audit(args.account)
        verdict = "consistent" if audit["consistent"] else "INCONSISTENT"
        print(f"balance {micros_to_header(audit['balance'])} = top-ups {micros_to_header(audit['topups'])}"
              f" + refunds {micros_to_header(audit['refunds'])} - charges {micros_to_header(audit['charged'])}"
              f" - open holds {micros_to_header(audit['open'])}: {verdict}")
        return 0 if audit["consistent"] else 2
    elif args.command == "audit":
        return _audit(target, books)
    elif args.command == "failures":
        return _failures(args, target)
    elif args.command == "set-limits":
        if args.concurrent is not None:
            limits = accounts.set_concurrency(args.account, args.endpoint, limit=args.concurrent)
        elif args.per_minute is None or args.burst is None:
            print("kyma-admin: set-limits needs --per-minute and --burst, or --concurrent", file=sys.stderr)
            return 2
        else:
            limits = accounts.set_limits(args.account, args.endpoint, per_minute=args.per_minute, burst=args.burst)
        print(f"{args.account}: {json.dumps(limits, sort_keys=True)}; {flush_authorizer_cache(target)}")
    elif args.command == "keys":
        for shown in CustomerKeys(accounts.ddb, accounts.cfg).list_keys(args.account):
            print(json.dumps(shown, sort_keys=True))
    elif args.command == "issue-key":
        print(f"KYMA_API_KEY={accounts.issue_key(args.account)}")
    elif args.command == "revoke-key":
        if args.key:
            key = sys.stdin.readline().strip() if args.key == "-" else args.key
            count = int(accounts.revoke_key(key))
        elif args.key_id:
            keys = CustomerKeys(accounts.ddb, accounts.cfg)
            was = keys.find(args.account, args.key_id).get("status")
            count = int(keys.revoke(args.account, args.key_id, keep_one=False)["status"] == "revoked"
                        and was == "active")
        else:
            count = accounts.revoke_account_keys(args.account)
        print(f"revoked {count} key(s); {flush_authorizer_cache(target)}")
        return 0 if count else 1
    return 0


def _failures(args: argparse.Namespace, target: Target) -> int:
    import boto3
    from botocore.config import Config as BotoConfig

    if not target.failure_queues:
        print(f"kyma-admin: no failure queues known for {target.describe} (pass --stack-name of a stack "
              "deployed with their outputs, or start the local stack)", file=sys.stderr)
        return 2
    sqs = boto3.client("sqs")
    if not args.redrive:
        total = show(sqs, target.failure_queues)
        print(f"{total} message(s) in all ({target.describe})")
        return 0
    invoke = (local_invoker(target.control_url) if target.control_url
              else lambda_invoker(boto3.client("lambda", config=BotoConfig(read_timeout=900,
                                                                           retries={"max_attempts": 0}))))
    left = redrive(sqs, target.failure_queues, invoke)
    print(f"{left} message(s) left ({target.describe})")
    return 0 if left == 0 else 1


def _audit(target: Target, books) -> int:
    import boto3

    from kyma.billing.audit import account_ids, audit_all
    from kyma.billing.money import micros_to_header

    report = audit_all(books, account_ids(boto3.client("dynamodb"), target.accounts_table))
    usd = {k: micros_to_header(v) for k, v in report.totals.items()}
    print(f"{report.accounts} account(s) ({target.describe}): balances {usd['balance']} = top-ups {usd['topups']}"
          f" + refunds {usd['refunds']} - charges {usd['charged']} - open holds {usd['open']} USD")
    for mismatch in report.mismatched:
        print(f"MISMATCH {mismatch['account_id']}: {'; '.join(mismatch['problems'])}")
    print("consistent" if report.consistent else f"INCONSISTENT: {len(report.mismatched)} account(s)")
    return 0 if report.consistent else 1


if __name__ == "__main__":
    sys.exit(main())
