#!/usr/bin/env bash
# Builds the Debian package from a routeplane binary with plain dpkg-deb (no debhelper):
#   dist/deb/build.sh ARCH BINARY [OUTDIR]     e.g. dist/deb/build.sh arm64 target/aarch64-unknown-linux-musl/release/routeplane
# ARCH is the Debian architecture (amd64, arm64). Writes OUTDIR/routeplane_VERSION_ARCH.deb
# (OUTDIR defaults to target/deb) and prints its path. The package holds the binary
# (/usr/bin/routeplane), the system unit (with ExecStart=/usr/bin/routeplane), the example
# config as a conffile (/etc/routeplane/routeplane.yaml) and its documentation; postinst
# creates the `routeplane` system user and enables the service as dh_installsystemd would.
set -euo pipefail
cd "$(dirname "$0")/../.."

arch=${1:?usage: dist/deb/build.sh ARCH BINARY [OUTDIR]}
bin=${2:?usage: dist/deb/build.sh ARCH BINARY [OUTDIR]}
out=${3:-target/deb}
case "$arch" in
  amd64) strip_tool=${STRIP:-strip} ;;
  arm64) strip_tool=${STRIP:-aarch64-linux-gnu-strip} ;;
  *) echo "dist/deb/build.sh: unknown architecture '$arch' (amd64 or arm64)" >&2; exit 2 ;;
esac
[ -f "$bin" ] || { echo "dist/deb/build.sh: no binary at $bin" >&2; exit 2; }
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
name=routeplane_${version}_${arch}
stage=$(mktemp -d "${TMPDIR:-/tmp}/routeplane-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/$name
doc=$root/usr/share/doc/routeplane
# Files are written with explicit modes; the umask must not loosen or tighten them.
umask 022

install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/routeplane" \
  "$doc" "$root/usr/share/man/man1"
install -m 0755 "$bin" "$root/usr/bin/routeplane"
if command -v "$strip_tool" >/dev/null; then
  "$strip_tool" --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/routeplane"
else
  echo "note: $strip_tool not found; the binary is packaged as given" >&2
fi
sed 's#^ExecStart=/usr/local/bin/routeplane #ExecStart=/usr/bin/routeplane #' \
  dist/systemd/routeplane.service > "$root/lib/systemd/system/routeplane.service"
chmod 0644 "$root/lib/systemd/system/routeplane.service"
grep -q '^ExecStart=/usr/bin/routeplane ' "$root/lib/systemd/system/routeplane.service" \
  || { echo "dist/deb/build.sh: the unit's ExecStart was not rewritten" >&2; exit 1; }
install -m 0644 routeplane.example.yaml "$root/etc/routeplane/routeplane.yaml"
install -m 0644 dist/deb/copyright "$doc/copyright"
install -D -m 0644 dist/deb/lintian-overrides "$root/usr/share/lintian/overrides/routeplane"
# A Debian-format changelog naming this version, dated by the last commit (reproducible).
when=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
printf 'routeplane (%s) unstable; urgency=medium\n\n  * Release %s; the changes are in the project'"'"'s git history.\n\n -- %s  %s\n' \
  "$version" "$version" "Routeplane developers <routeplane@users.noreply.github.com>" \
  "$(LC_ALL=C date -u -R -d "@$when")" | gzip -9n > "$doc/changelog.gz"
gzip -9n < dist/deb/routeplane.1 > "$root/usr/share/man/man1/routeplane.1.gz"
chmod 0644 "$doc/changelog.gz" "$root/usr/share/man/man1/routeplane.1.gz"

for script in postinst prerm postrm; do
  install -m 0755 "dist/deb/$script" "$root/DEBIAN/$script"
done
printf '/etc/routeplane/routeplane.yaml\n' > "$root/DEBIAN/conffiles"
size=$(du -k -s --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: routeplane
Version: $version
Architecture: $arch
Maintainer: Routeplane developers <routeplane@users.noreply.github.com>
Installed-Size: $size
Depends: adduser
Section: net
Priority: optional
Description: small, auditable local LLM proxy
 Routeplane puts every source of LLM tokens (subscriptions, hosted APIs,
 aggregators, Ollama and other local servers) behind one OpenAI- and
 Anthropic-compatible endpoint on 127.0.0.1:4356, with failover between them.
 .
 This package runs it as a sandboxed systemd service under its own user,
 configured in /etc/routeplane/routeplane.yaml.
CONTROL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort \
  | xargs md5sum > DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

mkdir -p "$out"
SOURCE_DATE_EPOCH=$when dpkg-deb --root-owner-group -Zxz --build "$root" "$out/$name.deb" >/dev/null
echo "$out/$name.deb"
