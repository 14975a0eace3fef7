#!/bin/sh
# The MQTT tests start their own Mosquitto on a free port; this makes sure the binary exists.
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "mosquitto is missing: installing it with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
  exit $?
fi
echo "mosquitto is not installed and cannot be installed automatically." >&2
echo "Install it (Debian/Ubuntu: apt-get install mosquitto mosquitto-clients) and run make test again." >&2
exit 1
