#!/usr/bin/env bash
# Builds the Debian package target/debian/amtsleitung_<version>_<arch>.deb (dpkg-deb, no
# other tool): the binary in /usr/bin, prompts in /usr/share/amtsleitung, the commented config
# and the default dialplan in /etc/amtsleitung (conffiles, kept on upgrade), the hardened
# systemd unit, and maintainer scripts that create the `amtsleitung` system user and
# /var/lib/amtsleitung.
#
#   scripts/build-deb.sh            # release build
#   scripts/build-deb.sh BINARY     # package an existing binary (the tests use the debug one)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ge 1 ]; then
  bin=$1
else
  cargo build --release --locked -p server
  bin=target/release/amtsleitung
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
arch=$(dpkg --print-architecture)
root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT

install -D -m 0755 "$bin" "$root/usr/bin/amtsleitung"
strip --strip-unneeded "$root/usr/bin/amtsleitung"
for lang in sounds/*/; do
  install -d "$root/usr/share/amtsleitung/$lang"
  install -m 0644 "$lang"*.wav "$root/usr/share/amtsleitung/$lang"
done
install -D -m 0644 deploy/amtsleitung.toml "$root/etc/amtsleitung/amtsleitung.toml"
install -D -m 0644 dialplans/default.toml "$root/etc/amtsleitung/dialplans/default.toml"
install -D -m 0644 deploy/amtsleitung.service "$root/lib/systemd/system/amtsleitung.service"
doc="$root/usr/share/doc/amtsleitung"
install -D -m 0644 README.md "$doc/README.md"
install -D -m 0644 crates/trunks/examples/trunks.toml "$doc/examples/trunks.toml"
install -D -m 0644 deploy/kamailio/amtsleitung-pool.cfg "$doc/examples/kamailio/amtsleitung-pool.cfg"
install -d "$doc/examples/townhall"
install -m 0644 dialplans/examples/townhall/* "$doc/examples/townhall/"
cat > "$doc/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: amtsleitung

Files: *
License: AGPL-3.0-or-later
 On Debian systems the full text of the GNU Affero General Public License is at
 https://www.gnu.org/licenses/agpl-3.0.txt
COPYRIGHT

install -d "$root/DEBIAN"
install -m 0755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$root/DEBIAN/"
printf '%s\n' /etc/amtsleitung/amtsleitung.toml /etc/amtsleitung/dialplans/default.toml \
  > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: amtsleitung
Version: $version
Architecture: $arch
Maintainer: amtsleitung developers <amtsleitung@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.36), libgcc-s1, libopus0, adduser
Section: comm
Priority: optional
Description: telephone conference and call-routing server for public administrations
 Self-hosted phone conference rooms (room number and PIN, lobby, moderator
 keys, recording), calls to staff phones registered over VPN, SIP trunks,
 and dialplans in plain files that are checked, explained and reloaded
 without dropping calls.
CONTROL

mkdir -p target/debian
out="target/debian/amtsleitung_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
