#!/usr/bin/env bash
# Docker for `make sam-local`: installs Debian's docker.io (and debootstrap, for the offline base
# image) when absent, and starts dockerd when no daemon answers.  Root, or sudo, for apt and dockerd.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ "${#need[@]}" -gt 0 ]; then
  echo "== installing ${need[*]} (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi
echo "== starting dockerd (log: /tmp/kyma-dockerd.log)"
as_root sh -c 'nohup dockerd >/tmp/kyma-dockerd.log 2>&1 &'
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "dockerd did not start; see /tmp/kyma-dockerd.log" >&2
exit 1
