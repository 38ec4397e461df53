#!/usr/bin/env bash
# Installs headless Chromium (Debian's package) for tests/test_browser.py when it is missing. Idempotent; sudo when not root.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
as_root=""
[ "$(id -u)" -eq 0 ] || as_root="sudo"
echo "installing Chromium (apt-get install chromium) for the browser test" >&2
$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
