#!/usr/bin/env bash
# The base image SAM CLI builds a zip function's run image on: public.ecr.aws/lambda/python:3.13-<arch>.
#
# Kept when present (cached by tag: delete it with `docker rmi` to rebuild).  Otherwise pulled from
# ECR Public, and where no registry can be reached (this project's machines) built offline:
# Debian trixie (its python3 is 3.13) from the Debian mirror, awslambdaric and the lock's boto3
# from PyPI wheels in /var/runtime, a /var/runtime/bootstrap running the runtime client, then
# `docker import`.  SAM CLI adds the Runtime Interface Emulator (shipped in its own wheel) on top.
# Fidelity: Debian's glibc and Python 3.13.x with the open-source runtime client, not Amazon
# Linux 2023 with AWS's own build; close enough to run the built artifact, not a byte-for-byte copy.
#
# Usage: base-image.sh [x86_64|arm64]   (needs root or sudo for debootstrap)
set -euo pipefail
cd "$(dirname "$0")/../.."

ARCH="${1:-x86_64}"
IMAGE="public.ecr.aws/lambda/python:3.13-$ARCH"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# A host Python 3.13 (pip for the wheels, compileall for the bytecode): python3.13 on PATH, or pyenv's.
PY313="${PY313:-}"
if [ -z "$PY313" ]; then
  if python3.13 -c '' >/dev/null 2>&1; then PY313=python3.13
  elif command -v pyenv >/dev/null 2>&1; then
    PY313="$(pyenv root)/versions/$(pyenv versions --bare | grep -E '^3\.13' | tail -1)/bin/python3.13"
  fi
fi
"$PY313" -c 'import sys; assert sys.version_info[:2] == (3, 13)' \
  || { echo "base-image.sh: needs a Python 3.13 (PY313=...)" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "== base image $IMAGE: present"
  exit 0
fi
if timeout 60 docker pull -q "$IMAGE" >/dev/null 2>&1; then
  echo "== base image $IMAGE: pulled"
  exit 0
fi

case "$ARCH" in
  x86_64) deb_arch=amd64; wheel_platform=manylinux2014_x86_64 ;;
  arm64) deb_arch=arm64; wheel_platform=manylinux2014_aarch64 ;;
  *) echo "unknown architecture $ARCH" >&2; exit 2 ;;
esac
boto3_pin="$(grep -E '^(boto3|botocore|s3transfer|jmespath|urllib3|python-dateutil|six)==' requirements-lock.txt)"
echo "== building $IMAGE offline (debootstrap trixie $deb_arch; awslambdaric, $(echo "$boto3_pin" | tr '\n' ' '))"
start=$(date +%s)
root="$(mktemp -d /tmp/kyma-lambda-base.XXXXXX)"
trap 'as_root rm -rf "$root"' EXIT
as_root debootstrap --arch="$deb_arch" --variant=minbase --include=python3,ca-certificates \
  trixie "$root" "$MIRROR" >/tmp/kyma-debootstrap.log 2>&1 \
  || { tail -20 /tmp/kyma-debootstrap.log >&2; exit 1; }

as_root mkdir -p "$root/var/runtime" "$root/var/task" "$root/opt"
# Lambda's runtime dependencies: the runtime interface client and the runtime's boto3 (the lock's,
# as the dev .venv has it).  Wheels only: no compiler in the image, none needed.
echo "$boto3_pin" > "$root/tmp/runtime-pins.txt"
as_root "$PY313" -m pip install --quiet --disable-pip-version-check --no-compile \
  --target "$root/var/runtime" --only-binary=:all: --platform "$wheel_platform" \
  --implementation cp --python-version 3.13 --abi cp313 \
  -c "$root/tmp/runtime-pins.txt" awslambdaric boto3
# Bytecode now (same magic number for every 3.13.x): boto3's import takes seconds without it.
as_root "$PY313" -m compileall -q -j 0 -s "$root" -p / "$root/var/runtime"

as_root tee "$root/var/runtime/bootstrap" >/dev/null <<'BOOT'
#!/bin/sh
# Lambda's python3.13 runtime, as far as a function can tell: the handler module from
# /var/task, layers' packages from /opt/python, the runtime client from /var/runtime.
export PYTHONPATH="/var/task:/opt/python:/opt/python/lib/python3.13/site-packages:/var/runtime${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "${AWS_LAMBDA_EXEC_WRAPPER:-}" ]; then
  exec "$AWS_LAMBDA_EXEC_WRAPPER" /usr/bin/python3.13 -m awslambdaric "$_HANDLER"
fi
exec /usr/bin/python3.13 -m awslambdaric "$_HANDLER"
BOOT
as_root chmod 755 "$root/var/runtime/bootstrap"
as_root rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/* "$root/tmp"/*

as_root tar -C "$root" -c . | docker import \
  -c 'ENV LANG=en_US.UTF-8' -c 'ENV TZ=:/etc/localtime' \
  -c 'ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin' \
  -c 'ENV LD_LIBRARY_PATH=/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib' \
  -c 'ENV LAMBDA_TASK_ROOT=/var/task' -c 'ENV LAMBDA_RUNTIME_DIR=/var/runtime' \
  -c 'WORKDIR /var/task' - "$IMAGE" >/dev/null
if [ "$ARCH" = arm64 ]; then
  # Docker 20.10's import ignores --platform: relabel the image's architecture.
  tmp="$(mktemp -d)"
  docker save "$IMAGE" | tar -C "$tmp" -x
  cfg="$tmp/$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))[0]["Config"])' "$tmp/manifest.json")"
  python3 - "$cfg" <<'PY'
import json, sys
path = sys.argv[1]
cfg = json.load(open(path))
cfg["architecture"], cfg["variant"] = "arm64", "v8"
json.dump(cfg, open(path, "w"))
PY
  tar -C "$tmp" -c . | docker load -q >/dev/null
  rm -rf "$tmp"
fi
echo "== base image $IMAGE: built offline in $(( $(date +%s) - start )) s"
