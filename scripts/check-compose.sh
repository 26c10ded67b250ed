#!/usr/bin/env bash
# Validates docker-compose.yml with Debian's docker-compose (installed when missing; no Docker engine needed).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing docker-compose (Debian package) to check docker-compose.yml"
    (apt-get install -y -qq docker-compose >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq docker-compose; }) >/dev/null
  else
    echo "docker-compose is not installed and cannot be installed here" >&2
    exit 1
  fi
fi
docker-compose -f docker-compose.yml config -q
echo "docker-compose.yml: valid"
