"""Where a running local stack writes what other tools need to reach it (kyma-admin, make invoke)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE_FILE = Path(os.environ.get("KYMA_LOCAL_STATE") or ROOT / ".kyma-local.json")
