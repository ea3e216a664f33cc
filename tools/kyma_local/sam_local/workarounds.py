"""Workarounds for SAM CLI 1.170.0's defects: the one place they live.

Each is applied to the generated local template or run (derive.py, __main__.py), never to
template.yaml, and each says why.  Root causes, found by trying: /work/shared/reference/sam-local.md
(the README's "sam local" section repeats what a user meets).

1. One `requestId` / `requestTimeEpoch` per `start-api` run: computed once, as default
   arguments of `RequestContext.__init__` (samcli/local/events/api_event.py).  No workaround
   here: kyma.edge.http.request_deadline no longer trusts an epoch older than the integration
   timeout (API Gateway never does that); X-Request-Id repeats within one run under sam local.
2. `--env-vars` only overrides variables the template declares: `declare_variables`.
3. `--docker-network host` does not set host networking; containers reach the host at the
   bridge gateway: `bridge_gateway` (services are relayed there, relay.py).
4. Routes are merged through a set whose order depends on the hash seed, so where an `ANY`
   and a method share a path either may win (API Gateway prefers the method):
   `explicit_fallback_methods`.
5. A REQUEST authorizer that raises `Unauthorized` answers 502, not 401, and gateway responses
   are not applied: the checks send unknown keys only to the project's own stack (make run).
6. Layers referenced by ARN are downloaded from AWS, and response streaming is not implemented:
   `drop_unrunnable` leaves the Web Adapter function (SpeechFunction) out.
7. arm64 runs under qemu, too slow for 3 s and 5 s timeouts (boto3's import alone 6 s):
   `run_on_x86_64` (the arm64-built layer imports on x86_64: its one native wheel,
   charset-normalizer, has a pure-Python fallback).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import Any

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
FALLBACK = "FallbackFunction"


def functions(doc: dict) -> dict[str, dict]:
    return {k: v for k, v in doc["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def api_events(resource: dict) -> dict[str, dict]:
    return {k: e for k, e in (resource.get("Properties", {}).get("Events") or {}).items() if e["Type"] == "Api"}


# 2 ──────────────────────────────────────────────────────────────────────────
def declare_variables(doc: dict, names: list[str]) -> None:
    """Declare (empty) every variable the env-vars file sets, so that SAM applies it."""
    variables = doc.setdefault("Globals", {}).setdefault("Function", {}).setdefault(
        "Environment", {}).setdefault("Variables", {})
    for name in names:
        variables.setdefault(name, "")


# 3 ──────────────────────────────────────────────────────────────────────────
def bridge_gateway() -> str:
    """The host's address on Docker's default bridge, as containers see it (172.17.0.1 usually)."""
    out = subprocess.run(["docker", "network", "inspect", "bridge"], check=True, capture_output=True,
                         text=True).stdout
    config = json.loads(out)[0]["IPAM"]["Config"][0]
    # Docker 20.10 leaves Gateway out for the default bridge: it is the subnet's first address.
    return config.get("Gateway") or str(next(ipaddress.ip_network(config["Subnet"]).hosts()))


# 4 ──────────────────────────────────────────────────────────────────────────
def explicit_fallback_methods(doc: dict) -> None:
    """The fallback's `ANY` on a path another function serves becomes the other methods, one
    event each: no route is then declared twice, whatever the hash seed."""
    served: dict[str, set[str]] = {}
    for logical_id, resource in functions(doc).items():
        if logical_id == FALLBACK:
            continue
        for event in api_events(resource).values():
            served.setdefault(event["Properties"]["Path"], set()).add(event["Properties"]["Method"].upper())
    fallback = doc["Resources"][FALLBACK]["Properties"]["Events"]
    for name, event in list(api_events(doc["Resources"][FALLBACK]).items()):
        props = event["Properties"]
        if props["Method"].upper() != "ANY" or props["Path"] not in served:
            continue
        del fallback[name]
        for method in ALL_METHODS:
            if method not in served[props["Path"]]:
                fallback[f"{name}{method.title()}"] = {"Type": "Api", "Properties": {**props, "Method": method}}


# 6 ──────────────────────────────────────────────────────────────────────────
def drop_unrunnable(doc: dict) -> list[str]:
    """Functions with a layer by ARN (the Web Adapter's), left out; their ids."""
    dropped = []
    for logical_id, resource in functions(doc).items():
        layers = resource["Properties"].get("Layers") or []
        if any(not (isinstance(layer, dict) and set(layer) == {"Ref"}) for layer in layers):
            del doc["Resources"][logical_id]
            dropped.append(logical_id)
    return dropped


# 7 ──────────────────────────────────────────────────────────────────────────
def run_on_x86_64(doc: dict) -> None:
    doc.setdefault("Globals", {}).setdefault("Function", {})["Architectures"] = ["x86_64"]
    for resource in doc["Resources"].values():
        props: dict[str, Any] = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and "Architectures" in props:
            props["Architectures"] = ["x86_64"]
        if resource["Type"] == "AWS::Serverless::LayerVersion":
            props["CompatibleArchitectures"] = ["arm64", "x86_64"]
