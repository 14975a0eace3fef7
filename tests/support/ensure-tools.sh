#!/bin/sh
# The suite runs real programs: mosquitto (its own broker on a free port), mosquitto_passwd,
# openssl (test certificates), systemd-analyze (unit checks) and chromium (a browser page
# receiving the websocket sink's stream), and the real upstreams of the protocol presets:
# nats-server (NATS over WebSocket) and rabbitmq-server (STOMP over WebSocket, web-stomp plugin),
# and for the network fault tests ip (iproute2: namespaces, veth, tun) and nft (nftables).
# Install what is missing.
missing=""
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$missing mosquitto"
command -v mosquitto_passwd >/dev/null 2>&1 || missing="$missing mosquitto-clients"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing="$missing nats-server"
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing="$missing rabbitmq-server"
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing="$missing nftables"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing test tools:$missing" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  exit $?
fi
echo "These tools are needed by the test suite and could not be installed automatically:$missing" >&2
echo "Install them (Debian/Ubuntu: apt-get install$missing) and run make test again." >&2
exit 1
