"""`make run`: the API on http://127.0.0.1:3000 with an embedded AWS, no Docker."""

from __future__ import annotations

import argparse
import os
import signal
import threading

from kyma_local.stack import DEMO_ACCOUNT_ID, DEMO_BALANCE_MICROS, LocalStack


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kyma-local", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")),
                        help="API port on 127.0.0.1 (default $PORT or 3000; 0 picks a free one)")
    args = parser.parse_args(argv)

    stack = LocalStack(port=args.port).start()
    from kyma.platform.config import config

    cfg = config()
    print(f"Kyma local stack (template.yaml, stage {stack.template.stage})")
    print(f"  API:          {stack.api_url}")
    print(f"  Embedded AWS: {stack.aws.endpoint}  (moto; tables and buckets from template.yaml)")
    if stack.sandbox is not None:
        print(f"  Provider:     sandbox at {stack.sandbox.base_url}  (a MiniMax stand-in speaking its wire "
              "format; set MINIMAX_API_KEY to use MiniMax)")
        print(f"  Sandbox:      {stack.sandbox.control_url}/  (loopback-only control: fail_when, reset, calls...)")
    else:
        print(f"  Provider:     {cfg.provider_name} at {cfg.minimax_base_url}  (your MINIMAX_API_KEY; "
              "it is passed to the functions, never stored)")
    print(f"Demo account {DEMO_ACCOUNT_ID} with ${DEMO_BALANCE_MICROS / 1_000_000:.2f}; its API key:")
    print(f"KYMA_API_KEY={stack.demo_api_key}")
    print("Try:")
    print(f'  curl -H "Authorization: Bearer {stack.demo_api_key}" {stack.api_url}/v1/credits/balance')
    print(f'  curl --no-buffer -H "Authorization: Bearer {stack.demo_api_key}" {stack.api_url}/v1/audio/speech '
          '-d \'{"input": "Hello, streaming world.", "voice": "English_expressive_narrator", '
          '"stream_format": "sse"}\'')
    if stack.sandbox is not None:
        print(f"  (speech streams as MiniMax would: the sandbox sends its first chunk after "
              f"{stack.sandbox.first_chunk_ms:.0f} ms, then one every {stack.sandbox.chunk_interval_ms:.0f} ms; "
              "KYMA_SANDBOX_FIRST_CHUNK_MS and KYMA_SANDBOX_CHUNK_INTERVAL_MS change that)")
    print("kyma-admin (in .venv/bin) reaches this stack while it runs. Ctrl-C stops it.", flush=True)

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
