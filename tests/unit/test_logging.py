"""The layer's stdlib loggers (kyma.providers.minimax, kyma.billing.paid_call: modules that do not
import Powertools) come out as Powertools JSON because they are children of the Powertools logger,
which is named after POWERTOOLS_SERVICE_NAME.  That is a coupling to the template's service name:
these tests fail if either side changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kyma_local.template import Template

ROOT = Path(__file__).resolve().parents[2]
STDLIB_LOGGERS = {"kyma.providers.minimax.exchange": "logger", "kyma.billing.paid_call": "log"}


def test_every_function_names_the_service_the_layers_loggers_are_children_of():
    import importlib

    services = {f.environment.get("POWERTOOLS_SERVICE_NAME") for f in Template().functions.values()}
    assert services == {"kyma"}
    for module, name in STDLIB_LOGGERS.items():
        assert getattr(importlib.import_module(module), name).name.startswith("kyma.")


@pytest.mark.parametrize("module", STDLIB_LOGGERS)
def test_a_stdlib_record_of_the_layer_is_one_powertools_json_line(module):
    (service,) = {f.environment["POWERTOOLS_SERVICE_NAME"] for f in Template().functions.values()}
    code = ("import importlib, kyma.platform.observability as o; "
            f"log = getattr(importlib.import_module({module!r}), {STDLIB_LOGGERS[module]!r}); "
            "log.warning('settle failed', extra={'entry_id': 'e1'})")
    env = {**os.environ, "POWERTOOLS_SERVICE_NAME": service,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "shared"), str(ROOT / "tools")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60)
    (line,) = out.stdout.splitlines()
    record = json.loads(line)
    assert (record["service"], record["level"], record["message"], record["entry_id"]) == \
        (service, "WARNING", "settle failed", "e1")
