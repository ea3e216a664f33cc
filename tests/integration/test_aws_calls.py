"""kyma_local.aws_calls: the record the IAM grant check reads (tests/integration/test_iam_grants.py)."""

from __future__ import annotations

import threading

import boto3
import pytest
from botocore.exceptions import ClientError

from kyma_local import aws_calls


@pytest.fixture(autouse=True)
def own_record(monkeypatch):
    """These tests' calls (made up functions) stay out of the session's record."""
    monkeypatch.setattr(aws_calls, "_calls", [])


def new_calls(before: int) -> list[aws_calls.AwsCall]:
    return aws_calls.recorded()[before:]


def test_a_call_is_recorded_for_the_function_running_it_with_the_resources_it_names(aws, cfg):
    ddb, s3 = boto3.client("dynamodb"), boto3.client("s3")
    before = len(aws_calls.recorded())
    ddb.get_item(TableName=cfg.accounts_table, Key={"account_id": {"S": "set-up"}})     # a test's own call
    with aws_calls.invoking("SomeFunction"):
        ddb.transact_write_items(TransactItems=[
            {"ConditionCheck": {"TableName": cfg.voices_table, "Key": {"voice_id": {"S": "v"}},
                                "ConditionExpression": "attribute_not_exists(voice_id)"}},
            {"Put": {"TableName": cfg.ledger_table, "Item": {"account_id": {"S": "a"}, "entry_id": {"S": "e"},
                                                              "secret": {"S": "item data"}}}}])
        ddb.query(TableName=cfg.ledger_table, IndexName="OpenHolds", KeyConditionExpression="open_hold = :o",
                  ExpressionAttributeValues={":o": {"S": "open"}})
        with pytest.raises(ClientError):
            s3.head_object(Bucket=cfg.audio_bucket, Key="speech/missing.mp3")
        s3.generate_presigned_url("get_object", Params={"Bucket": cfg.audio_bucket, "Key": "speech/a.mp3"})
        s3.generate_presigned_post(cfg.uploads_bucket, "uploads/acct/up_1")
    calls = new_calls(before)
    assert [(c.function, c.service, c.operation, c.presigned) for c in calls] == [
        ("SomeFunction", "dynamodb", "TransactWriteItems", None),
        ("SomeFunction", "dynamodb", "Query", None),
        ("SomeFunction", "s3", "HeadObject", None),
        ("SomeFunction", "s3", "GetObject", "url"),
        ("SomeFunction", "s3", "PutObject", "post"),
    ]
    transaction, query, head, url, post = calls
    assert transaction.items == [{"kind": "ConditionCheck", "TableName": cfg.voices_table},
                                 {"kind": "Put", "TableName": cfg.ledger_table}]
    assert "item data" not in transaction.to_json()                      # names, never data
    assert (transaction.status, query.params) == (200, {"TableName": cfg.ledger_table, "IndexName": "OpenHolds"})
    assert (head.status, head.params) == (404, {"Bucket": cfg.audio_bucket, "Key": "speech/missing.mp3"})
    assert url.params == {"Bucket": cfg.audio_bucket, "Key": "speech/a.mp3"}
    assert post.params == {"Bucket": cfg.uploads_bucket, "Key": "uploads/acct/up_1"}


def test_concurrent_invocations_in_threads_keep_their_own_calls(aws, cfg):
    ddb = boto3.client("dynamodb")
    before = len(aws_calls.recorded())
    barrier = threading.Barrier(2)

    def invoke(function: str, table: str) -> None:
        with aws_calls.invoking(function):
            barrier.wait()
            for _ in range(5):
                ddb.get_item(TableName=table, Key={"account_id": {"S": "x"}, "entry_id": {"S": "y"}}
                             if table == cfg.ledger_table else {"account_id": {"S": "x"}})

    threads = [threading.Thread(target=invoke, args=("A", cfg.accounts_table)),
               threading.Thread(target=invoke, args=("B", cfg.ledger_table))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_function = {(c.function, c.params["TableName"]) for c in new_calls(before)}
    assert by_function == {("A", cfg.accounts_table), ("B", cfg.ledger_table)}


def test_another_process_hands_its_calls_over_in_a_file(aws, cfg, tmp_path, monkeypatch):
    path = tmp_path / "calls.jsonl"
    monkeypatch.setattr(aws_calls, "_file", str(path))     # as install(path) in the local stack
    before = len(aws_calls.recorded())
    with aws_calls.invoking("AccountFunction"):
        boto3.client("dynamodb").get_item(TableName=cfg.accounts_table, Key={"account_id": {"S": "x"}})
    assert aws_calls.read_file(str(path)) == new_calls(before)
    assert aws_calls.read_file(str(tmp_path / "none.jsonl")) == []
