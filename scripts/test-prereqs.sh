#!/usr/bin/env bash
# Machine prerequisites for the test suite that pip cannot install: Debian's chromium for the
# browser tests (Playwright drives it; we never download a browser).
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "installing Debian chromium for the browser tests"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
            || echo "warning: could not install chromium; browser tests will be skipped"
    else
        echo "warning: /usr/bin/chromium missing and cannot apt-get; browser tests will be skipped"
    fi
fi
