#!/bin/sh
# Debian's `prometheus` package (prometheus and promtool), unpacked under $1 for the tests: not installed, because
# its maintainer scripts would start a system daemon listening on every interface. Needs Debian's package index
# (`apt-get update` is run once when the package is not found). Does nothing when $1/usr/bin/prometheus exists.
set -eu
[ -x "${1:?usage: install_prometheus.sh DESTINATION}/usr/bin/prometheus" ] && exit 0
mkdir -p "$1"
destination=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }
dpkg-deb -x prometheus_*.deb "$destination"
"$destination/usr/bin/prometheus" --version | head -1
