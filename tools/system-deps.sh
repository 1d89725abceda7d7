#!/usr/bin/env bash
# Installs the system packages kpng needs (nftables, iproute2; with --with-browser also the
# tests' Chromium) when they are missing and we may install them.
set -euo pipefail
need=()
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
# the observer's dashboard test drives a headless Chromium through the DevTools protocol
if [ "${1:-}" = "--with-browser" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  # the AsyncAPI check runs node (tools/asyncapi)
  command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing ${need[*]}; install them as root (apt-get install ${need[*]})" >&2
  exit 0
fi
echo "system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
