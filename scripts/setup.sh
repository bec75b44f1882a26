#!/usr/bin/env bash
# Installs every Debian package molmo.c needs to build and test, non-interactively.
# Idempotent: packages already present are left alone. Run as root or with sudo available.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  clang libclang-rt-14-dev llvm
  libjpeg62-turbo-dev libspng-dev libpng-dev libwebp-dev
  libpcre2-dev libutf8proc-dev libjansson-dev
  libmicrohttpd-dev libcurl4-openssl-dev libssl-dev
  libfreetype-dev fonts-dejavu-core
  libcmocka-dev python3
)
# Node.js is only used by the tokenizer benchmark's baseline; a machine that already has
# node/npm from another source keeps them (Debian's npm conflicts with those builds).
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages already installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
