"""The local stack's embedded AWS (moto server on loopback) is not a door for web pages: a
browser's cross-origin request gets no CORS grant, except where a bucket's own CORS rules give
one, as in S3."""

from __future__ import annotations

import pytest
import requests

from kyma_local.aws import EmbeddedAws, create_resources
from kyma_local.template import Template

EVIL = "https://any-page.example"


APP = "https://app.example.com"


@pytest.fixture(scope="module")
def embedded():
    """The template's buckets as a stack with UploadsCorsOrigins=APP creates them."""
    aws = EmbeddedAws()
    endpoint = aws.start()
    template = Template(name_prefix="kyma-cors", parameters={"UploadsCorsOrigins": APP})
    create_resources(template, endpoint_url=endpoint)
    yield endpoint, template
    aws.stop()


def preflight(url: str, method: str = "POST", headers: str = "content-type,x-amz-target",
              origin: str = EVIL) -> requests.Response:
    return requests.options(url, timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers})


def test_a_cross_origin_preflight_gets_a_grant_only_from_a_bucket_cors_rule_as_in_s3(embedded):
    endpoint, template = embedded
    # DynamoDB and SSM are JSON POSTs to the root; S3 is per bucket (AudioBucket has no CORS rule).
    for url in (endpoint + "/", f"{endpoint}/{template.physical_name('AudioBucket')}"):
        response = preflight(url)
        assert "Access-Control-Allow-Origin" not in response.headers, (url, dict(response.headers))
        assert "Access-Control-Allow-Methods" not in response.headers
    # The browser upload flow: UploadsBucket's own rule answers the configured origin, and only it.
    uploads = f"{endpoint}/{template.physical_name('UploadsBucket')}"
    response = preflight(uploads, headers="content-type", origin=APP)
    assert response.headers.get("Access-Control-Allow-Origin") == APP
    assert response.headers.get("Access-Control-Allow-Methods") == "POST"
    response = preflight(uploads, headers="content-type")
    assert "Access-Control-Allow-Origin" not in response.headers, dict(response.headers)


def test_without_configured_origins_no_page_may_post_to_the_uploads_bucket():
    aws = EmbeddedAws()
    endpoint = aws.start()
    try:
        template = Template(name_prefix="kyma-nocors")        # UploadsCorsOrigins: the default, none
        create_resources(template, endpoint_url=endpoint)
        response = preflight(f"{endpoint}/{template.physical_name('UploadsBucket')}", headers="content-type",
                             origin=APP)
        assert "Access-Control-Allow-Origin" not in response.headers, dict(response.headers)
    finally:
        aws.stop()


def test_a_cross_origin_read_of_a_table_gets_no_grant(embedded):
    endpoint, template = embedded
    response = requests.post(endpoint + "/", timeout=10, json={"TableName": template.physical_name("ApiKeysTable")},
                             headers={"Origin": EVIL, "X-Amz-Target": "DynamoDB_20120810.Scan",
                                      "Content-Type": "application/x-amz-json-1.0",
                                      "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/"
                                                       "dynamodb/aws4_request, SignedHeaders=host, Signature=0"})
    assert "Access-Control-Allow-Origin" not in response.headers
