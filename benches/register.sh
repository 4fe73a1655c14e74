#!/usr/bin/env bash
# Authenticated REGISTERs per second: SIPp registers USERS staff phones over and over (REGISTER,
# 401 with a digest challenge, REGISTER with credentials, 200) against a release build of the
# server pinned to one core, at rising call rates. Every REGISTER that gets its 200 is a full
# digest verification and a binding refresh (written to the store).
#
#   benches/register.sh [SERVER_BINARY] [USERS] [SECONDS_PER_RATE] [RATES...]
#   benches/register.sh target/release/amtsleitung 1000 10 1000 2000 4000 8000
#
# Needs sipp (Debian: sip-tester) and taskset. Loopback only: the server on core 0, SIPp on
# core 1 (2 cores needed). Prints one line per rate: REGISTER transactions answered 200 per
# second, SIPp's failed registrations (no 200 within 5 s, retransmissions included) and the
# server's CPU share of its core.
set -euo pipefail

server=${1:-target/release/amtsleitung}
users=${2:-1000}
seconds=${3:-10}
shift $(( $# < 3 ? $# : 3 ))
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(1000 2000 4000 8000)

repo=$(cd "$(dirname "$0")/.." && pwd)
server=$(realpath "$server")
work=$(mktemp -d /tmp/amt-register-bench.XXXXXX)
trap 'kill "$server_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

# Users 20000.. with one password each, imported in one go (HA1s only are stored).
{
    echo "extension,name,password"
    for ((i = 0; i < users; i++)); do echo "$((20000 + i)),Bench $i,pw-$((20000 + i))-x"; done
} > "$work/users.csv"
{
    echo "SEQUENTIAL"
    # SIPp expands an [authentication ...] keyword read from the injection file.
    for ((i = 0; i < users; i++)); do
        echo "$((20000 + i));[authentication username=$((20000 + i)) password=pw-$((20000 + i))-x]"
    done
} > "$work/sipp-users.csv"
"$server" user --data-dir "$work/data" import "$work/users.csv" > /dev/null

# The scenario is shared with benches/pool.sh.
cp "$repo/benches/register.xml" "$work/register.xml"

port=$(( 40000 + RANDOM % 10000 ))
http=$(( port + 1 ))
# Qualify off: the OPTIONS to thousands of SIPp "phones" would only measure SIPp.
# MAX_TRANSACTIONS (default: the server's, 100000) bounds the sustained rate: every answered
# REGISTER is kept 32 s (RFC 3261 Timer J).
printf '[registrar]\nqualify-interval = 0\n[security]\nmax-transactions = %s\n' \
    "${MAX_TRANSACTIONS:-100000}" > "$work/bench.toml"
cd "$repo"
RUST_LOG=warn taskset -c 0 "$server" serve --config "$work/bench.toml" \
    --sip-listen "127.0.0.1:$port" --http-listen "127.0.0.1:$http" --media-ip 127.0.0.1 \
    --rtp-ports 36000-36099 --data-dir "$work/data" --media-workers 1 > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$http") 2>/dev/null && break
    sleep 0.1
done

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
printf '%-8s %-14s %-8s %-12s %s\n' "rate/s" "200 OK/s" "failed" "server core" "registrations"
first=1
for rate in "${rates[@]}"; do
    # Let the previous rate's transactions run out (Timer J), so each rate starts empty.
    [ "$first" = 1 ] || sleep 33
    first=0
    before=$(cpu)
    started=$(date +%s.%N)
    out=$(taskset -c 1 sipp ${SIPP_EXTRA:-} -sf "$work/register.xml" -inf "$work/sipp-users.csv" \
        -i 127.0.0.1 -p $(( port + 2 )) -r "$rate" -m $(( rate * seconds )) -l $(( rate * 2 )) \
        -max_socket 100 -nostdin -recv_timeout 5000 -timeout $(( seconds + 30 ))s \
        "127.0.0.1:$port" 2>&1 || true)
    ended=$(date +%s.%N)
    after=$(cpu)
    elapsed=$(echo "$ended - $started" | bc -l)
    ok=$(echo "$out" | awk '/Successful call/ {print $(NF)}' | tail -1)
    failed=$(echo "$out" | awk '/Failed call/ {print $(NF)}' | tail -1)
    share=$(echo "($after - $before) / $ticks / $elapsed" | bc -l)
    printf '%-8s %-14.0f %-8s %-12.2f %s\n' "$rate" "$(echo "${ok:-0} / $elapsed" | bc -l)" \
        "${failed:-?}" "$share" "${ok:-0} in ${elapsed%.*} s"
done
