#!/bin/sh
# scripts/setup.sh — installs the Debian packages tapegrad needs (listed in packages.txt) and
# configures the release build in build/. Safe to run again: it installs only what is missing
# and keeps an existing build/ as it is.
set -e
cd "$(dirname "$0")/.."

missing=""
for package in $(cat packages.txt); do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $package"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends $missing
fi

if [ ! -f build/build.ninja ]; then
  meson setup build
fi
