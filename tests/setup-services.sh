#!/usr/bin/env bash
# Installs the servers the tests start themselves (PostgreSQL, from Debian's packages) when missing.
# Idempotent; uses sudo when not root. The tests run them on 127.0.0.1 only, in temporary folders.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo"
echo "installing PostgreSQL (apt-get install postgresql) for the multi-worker tests" >&2
$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql
