#!/usr/bin/env bash
# The whole test suite, from nothing, on Debian 12 as root (the end-to-end tests create
# network namespaces). Installs what the tests need when it is missing, then runs formatting,
# lints, unit tests and the end-to-end tests against SIPp and baresip.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sipp >/dev/null || need+=(sip-tester)
command -v baresip >/dev/null || need+=(baresip-core)
command -v sox >/dev/null || need+=(sox)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v nft >/dev/null || need+=(nftables)
# tests/quality.rs: iptables (nftables-backed) queues the talkers' packets to the NFQUEUE
# delayer, since this kernel has no nftables `queue` expression; ffmpeg codes the codec-only
# ceilings.
command -v iptables >/dev/null || need+=(iptables)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
# tests/liveness.rs captures the server's RTCP with tshark.
command -v tshark >/dev/null || need+=(tshark)
# tests/trunks.rs finds a carrier by DNS SRV records that dnsmasq serves in the namespace.
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v ip >/dev/null || need+=(iproute2)
# tests/tls.rs and tests/https.rs make their certificates with openssl; https.rs is a curl client.
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
# tests/webrtc_join.rs drives the join page in Debian's Chromium with npm's playwright-core
# and axe-core (the test installs those into target/join-page-node).
command -v chromium >/dev/null || need+=(chromium)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
# tests/backup.rs checks the backup with SQLite's own integrity check.
command -v sqlite3 >/dev/null || need+=(sqlite3)
# tests/ldap.rs signs in against a throw-away OpenLDAP slapd, filled with ldapadd.
[ -x /usr/sbin/slapd ] || need+=(slapd)
command -v ldapadd >/dev/null || need+=(ldap-utils)
# tests/pool.rs runs Debian's Kamailio with deploy/kamailio/amtsleitung-pool.cfg in front of two nodes.
[ -x /usr/sbin/kamailio ] || need+=(kamailio)
# The store's tests (cargo test -p store) run every test on SQLite and on a throw-away
# PostgreSQL 15 cluster they start from /usr/lib/postgresql/15/bin.
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
command -v pkg-config >/dev/null || need+=(pkg-config)
dpkg -s libopus-dev >/dev/null 2>&1 || need+=(libopus-dev)
command -v gcc >/dev/null || need+=(gcc)
# tests/quality.rs builds PyPI's pesq into a venv: it needs venv support and Python headers.
# tests/webrtc_whip.rs and tests/webrtc_bridge.rs install aiortc (wheels only) into
# target/aiortc-venv the same way.
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
python3 -c 'import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' 2>/dev/null || need+=(python3-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
  # Without a policy-rc.d that says no, postinst starts the stock slapd; the tests run their
  # own on free ports and never use it.
  if [ -s /run/slapd/slapd.pid ]; then kill -TERM "$(head -1 /run/slapd/slapd.pid)" 2>/dev/null || true; fi
  # The same for the stock PostgreSQL cluster: the store's tests start their own.
  if command -v pg_ctlcluster >/dev/null; then pg_ctlcluster 15 main stop 2>/dev/null || true; fi
fi
if [ "$(id -u)" != 0 ]; then
  echo "the end-to-end tests create network namespaces: run as root" >&2
  exit 1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Every test binary is built first, then run with two test threads each (the machine has two
# cores and each end-to-end test runs a server, clients and real-time media), AMT_TEST_LANES
# binaries at a time (default 2): most of their time is spent waiting on real-time audio.
mkdir -p target
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics \
  > target/test-binaries.json
python3 scripts/run-tests.py --lanes "${AMT_TEST_LANES:-2}" < target/test-binaries.json
cargo test --workspace --locked --doc
