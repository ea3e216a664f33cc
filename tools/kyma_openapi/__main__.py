"""`make openapi`: write layers/shared/kyma/edge/openapi.json from kyma_openapi.spec.build()."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kyma_openapi.spec import build

PATH = Path(__file__).resolve().parents[2] / "layers" / "shared" / "kyma" / "edge" / "openapi.json"


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {PATH.relative_to(Path.cwd()) if PATH.is_relative_to(Path.cwd()) else PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
