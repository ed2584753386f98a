#!/usr/bin/env python3
"""One round of bench/run.sh --lockstep: medinfer's modes and ONNX Runtime
take turns in one stretch of time.

Every engine is started once (its own process, so that peak memory stays
per engine), loads the model and makes its warmup runs, then waits.  Each
pair is a turn of every engine in a rotating order; a turn is an untimed run
(the engine's weights back in the caches, as in a process that runs alone)
and a timed one; a pause between turns lets the last one's threads go idle.
A slow spell of a shared machine then falls on the runs of every engine
alike, and each pair's medinfer/ORT ratio is taken within seconds.

Appends each engine's summary to RAW (run.sh's raw.tsv) and every timed run
to PAIRS (net, round, pair, engine, ms); each engine's output goes to
LOGS/NET.ENGINE.ROUND.log.
"""
import argparse
import os
import select
import subprocess
import sys
import time


def read_line(p, name, timeout):
    """The next line of p's output, within timeout seconds."""
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    if not ready:
        raise RuntimeError("%s: no answer in %d s" % (name, timeout))
    line = p.stdout.readline()
    if not line:
        raise RuntimeError("%s: ended early (exit %s)" % (name, p.wait()))
    return line.strip()


def wait_for(p, name, prefix, timeout, sink):
    """Lines of p up to the first starting with prefix (returned); the others to sink."""
    while True:
        line = read_line(p, name, timeout)
        if line.startswith(prefix):
            return line
        sink.write(line + "\n")


def field(text, key):
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return line.split()[1]
    return "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="medinfer-bench")
    ap.add_argument("--ort", required=True, help="ort_bench.js")
    ap.add_argument("--net", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--shape", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--engines", required=True, help="comma-separated: medinfer, medinfer-fast, medinfer-bf16, ort")
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--pause", type=float, default=0.2, help="seconds between turns")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds for a load or a turn")
    ap.add_argument("--logs", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--pairs-out", required=True)
    a = ap.parse_args()

    engines = a.engines.split(",")
    common = ["--shape", a.shape, "--threads", str(a.threads), "--runs", str(a.pairs), "--warmup", str(a.warmup),
              "--lockstep"]
    procs, logs = {}, {}
    loadavg = open("/proc/loadavg").read().split()[0]
    failed = {}
    for eng in engines:
        if eng == "ort":
            cmd = ["node", a.ort, a.model] + common
        else:
            cmd = [a.bin, a.model] + common + {"medinfer": [], "medinfer-fast": ["--fast"],
                                                "medinfer-bf16": ["--bf16"]}[eng]
        logs[eng] = open(os.path.join(a.logs, "%s.%s.%d.log" % (a.net, eng, a.round)), "w")
        procs[eng] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=logs[eng],
                                      text=True, bufsize=1)
    live = []
    for eng in engines:  # one load at a time would be fairer to the first; they are not timed
        try:
            wait_for(procs[eng], eng, "ready", a.timeout, logs[eng])
            live.append(eng)
        except RuntimeError as e:
            failed[eng] = str(e)
    with open(a.pairs_out, "a") as pairs:
        for i in range(a.pairs if "ort" in live else 0):
            order = live[i % len(live):] + live[:i % len(live)]
            for eng in order:
                if eng in failed:
                    continue
                p = procs[eng]
                try:
                    for kind in ("w", "t"):
                        p.stdin.write(kind + "\n")
                        p.stdin.flush()
                        ms = wait_for(p, eng, "ms ", a.timeout, logs[eng]).split()[1]
                    pairs.write("%s\t%d\t%d\t%s\t%s\n" % (a.net, a.round, i, eng, ms))
                except (RuntimeError, BrokenPipeError) as e:
                    failed[eng] = str(e)
                time.sleep(a.pause)
    with open(a.raw, "a") as raw:
        for eng in engines:
            p = procs[eng]
            try:
                p.stdin.close()
            except BrokenPipeError:
                pass
            try:  # its summary is a few lines: they fit the pipe while it ends
                p.wait(timeout=a.timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            rest = p.stdout.read()
            logs[eng].write(rest)
            logs[eng].close()
            if eng in failed or p.returncode != 0:
                msg = failed.get(eng) or "exit %d" % p.returncode
                last = open(logs[eng].name).read().strip().splitlines()
                if last:
                    msg += ": " + last[-1]
                raw.write("%s\t%d\t%s\tFAIL\t-\t-\t-\t%s\t%s\n" % (a.net, a.round, eng, loadavg, msg.replace("\t", " ")))
                print("  %-12s round %d %-13s FAILED: %s" % (a.net, a.round, eng, msg))
                continue
            med, peak = field(rest, "median"), field(rest, "peak_rss")
            raw.write("%s\t%d\t%s\tok\t%s\t%s\t%s\t%s\t%s\n" % (a.net, a.round, eng, med, peak, field(rest, "arena"),
                                                              loadavg, field(rest, "min")))
            print("  %-12s round %d %-13s %10s ms %8s MB  (load avg %s, lockstep)" % (a.net, a.round, eng, med, peak,
                                                                                    loadavg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
