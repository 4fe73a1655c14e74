#!/usr/bin/env python3
"""Runs the workspace's test binaries that `cargo test --no-run --message-format=json` built
(its JSON lines on stdin), several at a time, and fails if any fails.

Why not plain `cargo test`: it runs the binaries one after another, and most end-to-end tests
spend their time waiting on real-time audio (a 14 s speech file takes 14 s however fast the
machine is), so two cores sit mostly idle. Each binary still runs its own tests two at a time,
as before; `--lanes` binaries run at once. The slowest binaries start first (their durations
from the previous run, kept in target/test-durations.json), so the lanes end together.

Each binary's output goes to target/test-logs/<name>.log and is printed whole when it ends
(failures again at the end, so they are easy to find).

Measurements run alone (ALONE): PESQ of speech through the server depends on every client
and the server getting their 20 ms on time, and on two cores shared with another binary's
calls the speakers' baresips send late, which is the machine's doing, not the server's.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

# Until a run has recorded durations: the binaries known to take longest, in order.
SLOW_FIRST = ["server/" + name for name in [
    "quality", "trunks", "webrtc_join", "webrtc_bridge", "webrtc_whip", "conference", "calls",
    "liveness", "srtp", "registrar", "fax", "tls"]]


# Binaries that measure audio quality: run one at a time before the others, nothing beside.
ALONE = ["server/quality"]


def test_binaries(lines):
    """(name, executable, working directory) of every test binary cargo built."""
    found = []
    for line in lines:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if message.get("reason") != "compiler-artifact" or not message.get("executable"):
            continue
        if not message.get("profile", {}).get("test"):
            continue
        target = message["target"]
        package_dir = Path(message["manifest_path"]).parent
        # Unique across the workspace: two crates may each have a tests/no_alloc.rs.
        name = f"{package_dir.name}/{target['name']}"
        if target["kind"] != ["test"]:
            name += f"-{target['kind'][0]}"
        found.append((name, message["executable"], str(package_dir)))
    return found


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--target-dir", default="target")
    parser.add_argument("test_args", nargs="*", default=["--test-threads=2"])
    args = parser.parse_args()

    binaries = test_binaries(sys.stdin)
    if not binaries:
        print("no test binaries built", file=sys.stderr)
        return 1
    durations_file = Path(args.target_dir) / "test-durations.json"
    try:
        known = json.loads(durations_file.read_text())
    except (OSError, ValueError):
        known = {}

    def expected(entry):
        name = entry[0]
        if name in known:
            return known[name]
        if name in SLOW_FIRST:
            return 1000 - SLOW_FIRST.index(name)
        return 0

    queue = sorted(binaries, key=expected, reverse=True)
    logs = Path(args.target_dir) / "test-logs"
    logs.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    results = {}
    started = time.monotonic()

    def lane():
        while True:
            with lock:
                if not queue:
                    return
                name, executable, cwd = queue.pop(0)
            log = logs / f"{name.replace('/', '.')}.log"
            begin = time.monotonic()
            with open(log, "wb") as out:
                try:
                    code = subprocess.call([executable, *args.test_args], cwd=cwd, stdout=out,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                except OSError as err:
                    out.write(f"cannot run {executable} in {cwd}: {err}\n".encode())
                    code = 127
            took = time.monotonic() - begin
            summary = next((l for l in log.read_text(errors="replace").splitlines()
                            if l.startswith("test result:")), "no test result line")
            with lock:
                results[name] = (code, took, log)
                # The whole log in cargo's own format ("running N tests", each test, "test
                # result:"), so whoever reads the CI output sees what ran, not only our summary.
                print(f"\n----- {name} -----", flush=True)
                sys.stdout.write(log.read_text(errors="replace"))
                print(f"[{time.monotonic() - started:6.0f} s] {name}: "
                      f"{'ok' if code == 0 else f'FAILED (exit {code})'} in {took:.0f} s; {summary}",
                      flush=True)

    alone = [entry for entry in queue if entry[0] in ALONE]
    queue[:] = [entry for entry in queue if entry[0] not in ALONE]
    rest = list(queue)
    for entry in alone:
        queue[:] = [entry]
        lane()
    queue[:] = rest
    threads = [threading.Thread(target=lane) for _ in range(max(1, args.lanes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    durations_file.write_text(json.dumps({n: round(r[1], 1) for n, r in results.items()}))
    failed = sorted(n for n, r in results.items() if r[0] != 0)
    # A lane that died would otherwise pass the binaries it never ran.
    never_ran = sorted(name for name, _, _ in binaries if name not in results)
    if never_ran:
        print(f"never ran: {', '.join(never_ran)}", flush=True)
        return 1
    for name in failed:
        print(f"\n===== {name} ({results[name][2]}) =====", flush=True)
        sys.stdout.write(results[name][2].read_text(errors="replace"))
    print(f"\n{len(results) - len(failed)} of {len(results)} test binaries passed "
          f"in {time.monotonic() - started:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
