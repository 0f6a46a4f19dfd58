#!/usr/bin/env bash
# Make sure Debian's Chromium and its driver are installed for the dashboard's browser tests
# (tests/dashboard/test_dashboard_browser.py drives /usr/bin/chromium with Selenium through
# /usr/bin/chromedriver). Nothing is downloaded from outside the distribution's archive.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  echo "The dashboard's browser tests need Chromium and chromedriver at /usr/bin/chromium and" >&2
  echo "/usr/bin/chromedriver: on Debian, sudo apt-get install chromium chromium-driver" >&2
  exit 1
fi
echo "installing chromium and chromium-driver from Debian (dashboard browser tests)..." >&2
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null
