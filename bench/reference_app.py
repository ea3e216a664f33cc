"""The peer to beat: a balance endpoint written the way the Powertools examples write one.

Resolver with data validation, Logger, Tracer and Metrics, a boto3 DynamoDB
resource.  Only its cold start is measured (bench/run.py); it never serves.
"""

import os

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.logging import correlation_paths

tracer = Tracer()
logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True)
table = boto3.resource("dynamodb").Table(os.environ["ACCOUNTS_TABLE"])


@app.get("/v1/credits/balance")
@tracer.capture_method
def balance() -> dict:
    account_id = app.current_event.request_context.authorizer["account_id"]
    item = table.get_item(Key={"account_id": account_id})["Item"]
    return {"balance_usd": float(item["balance_micros"]) / 1_000_000}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    return app.resolve(event, context)
