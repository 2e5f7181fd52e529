#!/bin/sh
# Installs the routeplane binary from a release, checked against its SHA-256 first.
#
# Download this script, read it, then run it:
#   curl -fsSLO https://github.com/routeplane/routeplane/releases/latest/download/install.sh
#   sh install.sh            # or: sh install.sh v0.2.0
# It detects the CPU (x86_64 or aarch64, Linux), downloads routeplane-ARCH-linux-musl and
# routeplane-ARCH-linux-musl.sha256 with curl or wget, refuses a file whose hash differs,
# and installs to /usr/local/bin as root, else ~/.local/bin. It never runs anything it
# downloaded except `routeplane --version` after installing, and pipes nothing to a shell.
#
# Environment:
#   ROUTEPLANE_BASE_URL     where releases live (default: the project's GitHub releases);
#                           plain http is accepted only for 127.0.0.1 and localhost (tests)
#   ROUTEPLANE_VERSION      a tag such as v0.2.0 (default: the latest release)
#   ROUTEPLANE_INSTALL_DIR  where to put the binary
set -eu

repo=routeplane/routeplane
base=${ROUTEPLANE_BASE_URL:-https://github.com/$repo/releases}
base=${base%/}
version=${1:-${ROUTEPLANE_VERSION:-latest}}

say() { printf 'install.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

case "$base" in
  https://*) ;;
  http://127.0.0.1[:/]* | http://localhost[:/]*) ;;
  *) die "refusing $base: releases are fetched over https" ;;
esac

[ "$(uname -s)" = Linux ] || die "no release build for $(uname -s); build from source with cargo"
case "$(uname -m)" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  armv7l | armv6l) die "no build for 32-bit ARM ($(uname -m)); install a 64-bit OS on the Pi (Raspberry Pi 3/4/5), or build from source" ;;
  *) die "no release build for $(uname -m); build from source with cargo" ;;
esac
asset=routeplane-$arch-linux-musl

case "$version" in
  latest) url=$base/latest/download ;;
  v*) url=$base/download/$version ;;
  *) die "version '$version' should look like v0.2.0 (or be 'latest')" ;;
esac

if command -v curl >/dev/null 2>&1; then
  fetch() { curl -fsSL --retry 2 -o "$2" "$1"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -q -O "$2" "$1"; }
else
  die "neither curl nor wget is installed"
fi

if command -v sha256sum >/dev/null 2>&1; then
  hash_of() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  hash_of() { shasum -a 256 "$1" | cut -d' ' -f1; }
else
  die "neither sha256sum nor shasum is installed: cannot verify the download"
fi

if [ -n "${ROUTEPLANE_INSTALL_DIR:-}" ]; then
  dir=$ROUTEPLANE_INSTALL_DIR
elif [ "$(id -u)" = 0 ]; then
  dir=/usr/local/bin
else
  [ -n "${HOME:-}" ] || die "HOME is not set; set ROUTEPLANE_INSTALL_DIR"
  dir=$HOME/.local/bin
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/routeplane-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

say "downloading $url/$asset"
fetch "$url/$asset" "$tmp/$asset" || die "cannot download $url/$asset"
fetch "$url/$asset.sha256" "$tmp/$asset.sha256" || die "cannot download $url/$asset.sha256"

expected=$(cut -d' ' -f1 < "$tmp/$asset.sha256" | head -n 1)
case "$expected" in
  *[!0-9a-f]* | '') die "$asset.sha256 does not hold a SHA-256 hash" ;;
esac
[ "${#expected}" -eq 64 ] || die "$asset.sha256 does not hold a SHA-256 hash"
actual=$(hash_of "$tmp/$asset")
if [ "$actual" != "$expected" ]; then
  die "checksum mismatch for $asset: expected $expected, got $actual; nothing was installed"
fi
say "checksum ok ($actual)"

mkdir -p "$dir"
# Into the same directory first, then renamed: a running routeplane is never half-overwritten.
cp "$tmp/$asset" "$dir/.routeplane.new.$$"
chmod 0755 "$dir/.routeplane.new.$$"
mv -f "$dir/.routeplane.new.$$" "$dir/routeplane"
say "installed $dir/routeplane"
"$dir/routeplane" --version >&2 || say "warning: $dir/routeplane does not run here"

case ":${PATH:-}:" in
  *":$dir:"*) ;;
  *) say "note: $dir is not in PATH; add it, or run $dir/routeplane" ;;
esac
say "next: routeplane init, then routeplane (or: routeplane service install [--user])"
