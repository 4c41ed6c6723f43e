#!/usr/bin/env bash
# Debian's chromium and chromium-driver for the browser tests (tests/web), installed only when missing.
set -euo pipefail
if command -v chromium >/dev/null && [ -x /usr/bin/chromedriver ]; then exit 0; fi
echo "chromium or chromedriver is missing; installing them (Debian packages chromium chromium-driver)" >&2
if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
else sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver >/dev/null; fi
