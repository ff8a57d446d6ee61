#!/usr/bin/env bash
# Fetches mosquitto's own broker test suite (test/broker/*.py, EPL-2.0 / EDL-1.0, written by
# the Eclipse Mosquitto project) from Debian's source package of the mosquitto version that is
# installed, with apt-get and a private package list (the system's apt state is untouched).
# Usage: fetch-suite.sh DEST   → DEST/mosquitto-<version>/test/broker, DEST/VERSION
set -euo pipefail

dest=${1:?usage: fetch-suite.sh DEST}
installed=$(dpkg-query -W -f='${Version}' mosquitto 2>/dev/null || true)
if [[ -z "$installed" ]]; then
  echo "fetch-suite: the mosquitto package is not installed (apt-get install mosquitto)" >&2
  exit 1
fi
if [[ -f "$dest/VERSION" && "$(cat "$dest/VERSION")" == "$installed" ]]; then
  exit 0
fi
if ! command -v dpkg-source >/dev/null; then
  echo "fetch-suite: dpkg-source is missing (apt-get install dpkg-dev)" >&2
  exit 1
fi

. /etc/os-release
codename=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial"
# Same mirror as the machine's own apt sources; source packages of the release and its updates.
mirror=$(grep -rhoE 'https?://deb\.debian\.org/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}
{
  echo "deb-src ${mirror%/} $codename main"
  echo "deb-src ${mirror%/} $codename-updates main"
  echo "deb-src ${mirror%/}-security $codename-security main"
} >"$work/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=-" -o "Dir::State::Lists=$work/lists"
  -o "APT::Sandbox::User=root" -qq)
apt-get "${apt_opts[@]}" update >/dev/null
(cd "$work" && apt-get "${apt_opts[@]}" source "mosquitto=$installed" >/dev/null 2>"$work/source.log") || {
  echo "fetch-suite: apt-get source mosquitto=$installed failed:" >&2
  tail -n 5 "$work/source.log" >&2
  exit 1
}
src=$(find "$work" -maxdepth 1 -type d -name 'mosquitto-*' | head -n1)
rm -rf "$dest"
mkdir -p "$dest"
cp -r "$src" "$dest/"
echo "$installed" >"$dest/VERSION"
echo "fetch-suite: mosquitto $installed test suite in $dest" >&2
