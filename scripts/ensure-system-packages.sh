#!/usr/bin/env bash
# Usage: ensure-system-packages.sh BINARY:DEBIAN_PACKAGE ...
# Installs each missing binary from Debian packages when running as root with apt-get;
# otherwise prints the exact install command and fails.
set -euo pipefail
missing=()
for spec in "$@"; do
  binary=${spec%%:*} package=${spec#*:}
  command -v "$binary" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the packaged service; the tests run their own servers on free ports.
  for package in "${missing[@]}"; do
    service "$package" stop >/dev/null 2>&1 || true
  done
  exit 0
fi
echo "missing: ${missing[*]}. Install with: sudo apt-get install -y ${missing[*]}" >&2
exit 1
