"""What `make sam-local` hands SAM CLI: the local template and env file derived from the built
template (kyma_local.sam_local.derive), each SAM CLI workaround doing what it says."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from kyma_local.sam_local import derive, workarounds
from kyma_local.template import Template

SOURCE = Template().doc          # long form, as sam build writes .aws-sam/build/template.yaml


@pytest.fixture
def doc() -> dict:
    return copy.deepcopy(SOURCE)


def routes(doc: dict) -> list[tuple[str, str, str]]:
    return [(e["Properties"]["Path"], e["Properties"]["Method"].upper(), fid)
            for fid, fn in workarounds.functions(doc).items() for e in workarounds.api_events(fn).values()]


def test_no_path_and_method_is_declared_twice_once_the_fallback_names_its_methods(doc):
    before = routes(doc)
    assert ("/v1/credits/balance", "ANY", "FallbackFunction") in before          # shares a path with GET
    workarounds.explicit_fallback_methods(doc)
    after = routes(doc)
    pairs = [(path, method) for path, method, _ in after]
    assert len(pairs) == len(set(pairs))
    served = {(path, method): fid for path, method, fid in after}
    # The other functions keep their routes; the fallback answers every other method of their paths.
    for path, method, fid in before:
        if fid != "FallbackFunction":
            assert served[(path, method)] == fid
            for other in set(workarounds.ALL_METHODS) - {m for p, m, f in before if p == path and f != fid}:
                assert served[(path, other)] in (fid, "FallbackFunction")
    assert served[("/v1/credits/balance", "POST")] == "FallbackFunction"
    assert served[("/v1/audio/voices/{voice_id}", "PUT")] == "FallbackFunction"
    assert served[("/v1/audio/voices/{voice_id}", "DELETE")] == "VoicesFunction"
    # Paths nobody else serves keep their ANY.
    assert served[("/{proxy+}", "ANY")] == served[("/", "ANY")] == "FallbackFunction"


def test_only_the_function_with_a_layer_by_arn_is_left_out_and_everything_runs_on_x86_64(doc):
    assert workarounds.drop_unrunnable(doc) == ["SpeechFunction"]
    workarounds.run_on_x86_64(doc)
    assert doc["Globals"]["Function"]["Architectures"] == ["x86_64"]
    assert all(fn["Properties"].get("Architectures", ["x86_64"]) == ["x86_64"]
               for fn in workarounds.functions(doc).values())
    assert "x86_64" in doc["Resources"]["SharedLayer"]["Properties"]["CompatibleArchitectures"]


def test_derive_declares_every_variable_it_sets_and_points_at_the_built_code(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    built = copy.deepcopy(SOURCE)
    for fid, resource in built["Resources"].items():       # as sam build rewrites them
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = fid
    (build / "template.yaml").write_text(yaml.safe_dump(built))
    env = {"AWS_ENDPOINT_URL": "http://172.17.0.1:4566", "ACCOUNTS_TABLE": "kyma-local-accountstable",
           "KYMA_LOCAL_MINIMAX_API_KEY": "sandbox-key", "AWS_ACCESS_KEY_ID": "never-passed"}
    template, env_file, dropped = derive.derive(env, build=build, out=tmp_path / "local")
    local = yaml.safe_load(template.read_text())
    declared = local["Globals"]["Function"]["Environment"]["Variables"]
    # SAM CLI applies --env-vars only to declared variables (workarounds.py, 2); credentials are SAM's own.
    assert json.loads(env_file.read_text()) == {"Parameters": {k: v for k, v in env.items()
                                                               if k != "AWS_ACCESS_KEY_ID"}}
    assert {"AWS_ENDPOINT_URL", "KYMA_LOCAL_MINIMAX_API_KEY", "ACCOUNTS_TABLE"} <= set(declared)
    assert "AWS_ACCESS_KEY_ID" not in declared
    assert declared["ACCOUNTS_TABLE"] == {"Ref": "AccountsTable"}        # the template's own stays declared
    assert dropped == ["SpeechFunction"] and "SpeechFunction" not in local["Resources"]
    assert local["Resources"]["AccountFunction"]["Properties"]["CodeUri"] == str(build / "AccountFunction")
    assert local["Resources"]["SharedLayer"]["Properties"]["ContentUri"] == str(build / "SharedLayer")


def test_every_function_sam_local_can_run_is_invoked_on_an_event_with_its_answer_checked(doc):
    from kyma_local.sam_local.checks import EVENTS, INVOKES

    dropped = workarounds.drop_unrunnable(doc)          # what SAM local cannot run offline (the Web Adapter)
    runnable = set(workarounds.functions(doc))
    invoked = {function for _, function, _ in INVOKES}
    assert runnable and not set(dropped) & runnable
    assert invoked == runnable, f"no sam local invoke for {sorted(runnable - invoked)}"
    assert all((EVENTS / name).is_file() for name, _, _ in INVOKES)
