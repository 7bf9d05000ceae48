#!/usr/bin/env bash
# System libraries the Python wheels need: open3d links against libusb-1.0.
set -euo pipefail
if ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing libusb-1.0-0 (needed by open3d)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libusb-1.0-0 >/dev/null
else
  echo "open3d needs libusb-1.0 (libusb-1.0.so.0); install it with your system's package manager" >&2
  exit 1
fi
