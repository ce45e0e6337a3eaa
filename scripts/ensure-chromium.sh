#!/usr/bin/env bash
# Runs before `npm test`: the status-page test drives Debian's Chromium through playwright-core
# (Playwright's own browser download cannot be used), so install the package when it is missing.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "keel: /usr/bin/chromium is missing and apt-get is not available; the status-page test will be skipped" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "keel: installing chromium (for the status-page test) ..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
