#!/usr/bin/env bash
# Authenticated REGISTERs and call set-ups per second through Kamailio to two nodes, next to
# one node alone (issue 19, acceptance 6).
#
#   benches/pool.sh [SERVER_BINARY] [alone|pool] [SECONDS_PER_RATE] [REGISTER_RATES] [CALL_RATES]
#   benches/pool.sh target/release/amtsleitung alone 10 "500 1000 2000" "100 200 400"
#   benches/pool.sh target/release/amtsleitung pool  10 "500 1000 2000" "100 200 400"
#
# alone: SIPp talks to one node. pool: SIPp talks to Kamailio with the shipped
# deploy/kamailio/amtsleitung-pool.cfg, which spreads the traffic over two nodes (REGISTERs and
# calls to extensions by a hash over the extension, calls to 600 by call load). Every node
# knows the same 1000 users. A REGISTER is the full digest exchange (REGISTER, 401, REGISTER
# with credentials, 200); a call is INVITE, 200, ACK, BYE, 200 to the echo test 600 with SDP
# but no RTP (set-up and tear-down cost only). Loopback only (127.0.0.1 for SIPp and
# Kamailio, 127.0.0.11 and .12 for the nodes). Prints per rate: transactions completed per
# second, SIPp's failures, and the CPU (cores) of the nodes and of Kamailio.
# Needs sipp (sip-tester), kamailio, bc.
set -euo pipefail

server=${1:-target/release/amtsleitung}
mode=${2:-pool}
seconds=${3:-10}
read -r -a register_rates <<< "${4:-500 1000 2000}"
read -r -a call_rates <<< "${5:-100 200 400}"
users=1000

repo=$(cd "$(dirname "$0")/.." && pwd)
server=$(realpath "$server")
work=$(mktemp -d /tmp/amt-pool-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

{
    echo "extension,name,password"
    for ((i = 0; i < users; i++)); do echo "$((20000 + i)),Bench $i,pw-$((20000 + i))-x"; done
} > "$work/users.csv"
{
    echo "SEQUENTIAL"
    for ((i = 0; i < users; i++)); do
        echo "$((20000 + i));[authentication username=$((20000 + i)) password=pw-$((20000 + i))-x]"
    done
} > "$work/sipp-users.csv"

cp "$repo/benches/register.xml" "$work/register.xml"

cat > "$work/call.xml" <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="call set-up and tear-down">
  <send retrans="500"><![CDATA[
INVITE sip:600@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]c[call_number]
To: <sip:600@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:bench@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=bench 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
[routes]
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]c[call_number]
To: <sip:600@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
[routes]
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]c[call_number]
To: <sip:600@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
XML

base=$(( 41000 + RANDOM % 5000 ))
printf '[registrar]\nqualify-interval = 0\n[security]\nproxies = ["127.0.0.1/32"]\n' > "$work/node.toml"
node_ips=(127.0.0.11)
[ "$mode" = pool ] && node_ips=(127.0.0.11 127.0.0.12)
node_pids=()
for i in "${!node_ips[@]}"; do
    ip=${node_ips[$i]}
    "$server" user --data-dir "$work/data$i" import "$work/users.csv" > /dev/null
    http=$(( base + 10 + i ))
    rtp=$(( 30000 + i * 2000 ))
    (cd "$repo" && RUST_LOG=warn exec "$server" serve --config "$work/node.toml" \
        --sip-listen "$ip:$base" --http-listen "127.0.0.1:$http" --media-ip "$ip" \
        --rtp-ports "$rtp-$(( rtp + 1999 ))" --data-dir "$work/data$i" > "$work/node$i.log" 2>&1) &
    pids+=($!)
    node_pids+=($!)
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$http") 2>/dev/null && break
        sleep 0.1
    done
done

target="${node_ips[0]}:$base"
kamailio_pid=
if [ "$mode" = pool ]; then
    kport=$(( base + 1 ))
    for ip in "${node_ips[@]}"; do echo "1 sip:$ip:$base 0 0 duid=$ip"; done > "$work/nodes.list"
    kamailio -f "$repo/deploy/kamailio/amtsleitung-pool.cfg" -DD -E -n "${KAMAILIO_CHILDREN:-2}" -m "${KAMAILIO_SHM_MB:-1024}" -M 16 \
        -Y "$work" -P "$work/kamailio.pid" \
        -A "LISTEN=udp:127.0.0.1:$kport" -A "DISPATCHER_LIST=\"$work/nodes.list\"" \
        -A "CTL_SOCKET=\"unix:$work/ctl\"" -A "PING_INTERVAL=2" > "$work/kamailio.log" 2>&1 &
    kamailio_pid=$!
    pids+=("$kamailio_pid")
    until kamcmd -s "unix:$work/ctl" dispatcher.list 2>/dev/null | grep -c "FLAGS: AP" \
        | grep -q "^${#node_ips[@]}$"; do sleep 0.2; done
    target="127.0.0.1:$kport"
fi

ticks=$(getconf CLK_TCK)
# CPU seconds of a process and its children-threads (Kamailio: the main process and its
# forked workers, which share its process group).
cpu_of() { awk '{s += $14 + $15} END {print s + 0}' "/proc/$1/stat"; }
cpu_nodes() { local s=0; for p in "${node_pids[@]}"; do s=$(( s + $(cpu_of "$p") )); done; echo "$s"; }
cpu_kamailio() {
    [ -n "$kamailio_pid" ] || { echo 0; return; }
    local s=0
    for p in $(pgrep -g "$(ps -o pgid= "$kamailio_pid" | tr -d ' ')" kamailio); do
        s=$(( s + $(cpu_of "$p") ))
    done
    echo "$s"
}

run() { # scenario rate label
    local scenario=$1 rate=$2 label=$3 extra=()
    [ "$scenario" = register ] && extra=(-inf "$work/sipp-users.csv")
    local n0 k0 started out ended n1 k1 elapsed ok failed
    n0=$(cpu_nodes); k0=$(cpu_kamailio); started=$(date +%s.%N)
    [ -z "${BENCH_VERBOSE:-}" ] || extra+=(-trace_err -error_file "$work/sipp-errors.log")
    out=$(sipp -sf "$work/$scenario.xml" "${extra[@]}" -i 127.0.0.1 -p $(( base + 2 )) \
        -mp $(( base + 100 )) -r "$rate" -m $(( rate * seconds )) -l $(( rate * 2 )) \
        -max_socket 100 -nostdin -recv_timeout 5000 -timeout $(( seconds + 30 ))s \
        "$target" 2>&1 || true)
    ended=$(date +%s.%N); n1=$(cpu_nodes); k1=$(cpu_kamailio)
    # BENCH_VERBOSE=1: SIPp's message counts (where the failures are) on stderr.
    if [ -n "${BENCH_VERBOSE:-}" ]; then
        echo "$out" | grep -E -- '<-|->|Unexpected|Timeout' >&2 || true
        grep -m 3 -A 3 "Aborting call" "$work/sipp-errors.log" >&2 || true
    fi
    elapsed=$(echo "$ended - $started" | bc -l)
    ok=$(echo "$out" | awk '/Successful call/ {print $(NF)}' | tail -1)
    failed=$(echo "$out" | awk '/Failed call/ {print $(NF)}' | tail -1)
    printf '%-6s %-9s %-7s %-10.0f %-7s %-11.2f %.2f\n' "$mode" "$label" "$rate" \
        "$(echo "${ok:-0} / $elapsed" | bc -l)" "${failed:-?}" \
        "$(echo "($n1 - $n0) / $ticks / $elapsed" | bc -l)" \
        "$(echo "($k1 - $k0) / $ticks / $elapsed" | bc -l)"
}

printf '%-6s %-9s %-7s %-10s %-7s %-11s %s\n' mode what rate/s "done/s" failed "nodes CPU" "kamailio CPU"
for rate in "${register_rates[@]}"; do run register "$rate" REGISTER; sleep 2; done
for rate in "${call_rates[@]}"; do run call "$rate" call; sleep 2; done
