#!/usr/bin/env bash
# medinfer vs ONNX Runtime 1.20 (CPU) on the same .onnx files, same thread count.
# usage: bench/run.sh [--threads N] [--runs N] [--rounds N] [--only NAME]... [--mode M]... [--timeout S] [--lockstep]
#   --mode exact (default), fast (Winograd 3x3) or bf16: medinfer's modes, each
#   run in every round beside the same ONNX Runtime run
#   --lockstep: in each round the engines take turns run by run (bench/lockstep.py)
# See bench/README.md for what is measured and how to read it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${MEDINFER_BENCH_BUILD:-$root/build-bench}
out=$here/out
threads=2 runs= rounds=3 timeout_s=1800 lockstep=0
only=()
modes=()

while [ $# -gt 0 ]; do
  case $1 in
    --threads) threads=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --only) only+=("$2"); shift 2 ;;
    --mode)
      case $2 in exact|fast|bf16) modes+=("$2") ;; *) echo "run.sh: unknown mode '$2' (exact, fast, bf16)" >&2; exit 2 ;; esac
      shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --lockstep) lockstep=1; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
nets=(resnet50 densenet121 vgg16_bn unet3d)
[ ${#only[@]} -gt 0 ] && nets=("${only[@]}")
[ ${#modes[@]} -gt 0 ] || modes=(exact)
engines=()
for m in "${modes[@]}"; do
  engines+=("$([ "$m" = exact ] && echo medinfer || echo "medinfer-$m")")
done
engines+=(ort)

# --- medinfer-bench: always run make, so the bench measures the current tree;
# if the tree does not build right now (colleagues mid-change) keep the old binary.
bin=$build/engine/tools/medinfer-bench
mkdir -p "$out"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if ! make -C "$build" -j2 medinfer-bench >"$out/make.log" 2>&1; then
  [ -x "$bin" ] || { echo "run.sh: cannot build medinfer-bench (see $out/make.log)" >&2; exit 1; }
  echo "run.sh: warning: build failed, using the existing $bin (see $out/make.log)" >&2
fi

# --- ONNX Runtime from npm, version pinned by package-lock.json
if [ ! -d "$here/node_modules/onnxruntime-node" ]; then
  (cd "$here" && ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund >/dev/null)
fi

# --- models (torch lives in Debian's python, not the first python3 on PATH)
need=()
for n in "${nets[@]}"; do
  [ -f "$out/$n.onnx" ] && [ -f "$out/$n.json" ] || need+=("$n")
done
[ ${#need[@]} -gt 0 ] && /usr/bin/python3 "$here/export_models.py" --out "$out" "${need[@]}"

json_field() { /usr/bin/python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print("x".join(map(str,v)) if isinstance(v,list) else v)' "$1" "$2"; }

stamp=$(date +%Y%m%d-%H%M%S)
logs=$out/logs/$stamp
mkdir -p "$logs"
raw=$logs/raw.tsv
pairs=$logs/pairs.tsv
[ $lockstep = 1 ] && printf 'net\tround\tpair\tengine\tms\n' >"$pairs"
printf 'net\tround\tengine\tstatus\tmedian_ms\tpeak_mb\tarena_mb\tloadavg\tmin_ms_or_error\n' >"$raw"

echo "medinfer $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?') vs onnxruntime-node" \
     "$(node -p "require('$here/node_modules/onnxruntime-node/package.json').version")," \
     "threads=$threads rounds=$rounds modes=${modes[*]}$([ $lockstep = 1 ] && echo ' lockstep') OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} cores=$(nproc)"
echo "logs: $logs"

for n in "${nets[@]}"; do
  shape=$(json_field "$out/$n.json" shape)
  # 3D U-Net runs take seconds each: fewer per process unless --runs says otherwise.
  r=${runs:-$([ "$n" = unet3d ] && echo 3 || echo 10)}
  w=$([ "$n" = unet3d ] && echo 1 || echo 2)
  for ((k = 1; k <= rounds; k++)); do
    if [ $lockstep = 1 ]; then
      /usr/bin/python3 "$here/lockstep.py" --bin "$bin" --ort "$here/ort_bench.js" --net "$n" --model "$out/$n.onnx" \
        --shape "$shape" --threads "$threads" --pairs "$r" --warmup "$w" --engines "$(IFS=,; echo "${engines[*]}")" \
        --round "$k" --timeout "$timeout_s" --logs "$logs" --raw "$raw" --pairs-out "$pairs"
      continue
    fi
    # Alternate engines, each in its own process, so that peak RSS is per engine
    # and slow drifts in machine load hit both about equally.
    for eng in "${engines[@]}"; do
      log=$logs/$n.$eng.$k.log
      la=$(cut -d' ' -f1 /proc/loadavg)
      if [ $eng != ort ]; then
        cmd=("$bin" "$out/$n.onnx" --shape "$shape" --threads "$threads" --runs "$r" --warmup "$w")
        [ $eng = medinfer-fast ] && cmd+=(--fast)
        [ $eng = medinfer-bf16 ] && cmd+=(--bf16)
      else
        cmd=(node "$here/ort_bench.js" "$out/$n.onnx" --shape "$shape" --threads "$threads" --runs "$r" --warmup "$w")
      fi
      if timeout "$timeout_s" "${cmd[@]}" >"$log" 2>&1; then
        med=$(awk '/^median:/{print $2}' "$log")
        peak=$(awk '/^peak_rss:/{print $2}' "$log")
        arena=$(awk '/^arena:/{print $2}' "$log")
        mn=$(awk '/^min:/{print $2}' "$log")
        printf '%s\t%d\t%s\tok\t%s\t%s\t%s\t%s\t%s\n' "$n" "$k" $eng "$med" "$peak" "${arena:--}" "$la" "$mn" >>"$raw"
        printf '  %-12s round %d %-13s %10s ms %8s MB  (load avg %s)\n' "$n" "$k" $eng "$med" "$peak" "$la"
      else
        msg=$(tail -n 1 "$log" | tr '\t' ' ')
        printf '%s\t%d\t%s\tFAIL\t-\t-\t-\t%s\t%s\n' "$n" "$k" $eng "$la" "$msg" >>"$raw"
        printf '  %-12s round %d %-13s FAILED: %s\n' "$n" "$k" $eng "$msg"
        # a load/run error is deterministic: no point repeating it
        [ $eng != ort ] && grep -q '^medinfer-bench:' "$log" && k=$rounds && break
      fi
    done
  done
done

# --- table: median over rounds of each round's median latency / peak RSS
/usr/bin/python3 - "$raw" "$out" "${engines[*]}" "$([ $lockstep = 1 ] && echo "$pairs")" "${nets[@]}" <<'EOF'
import json, statistics, sys
raw, out, engines, pairs_tsv, nets = sys.argv[1], sys.argv[2], sys.argv[3].split()[:-1], sys.argv[4], sys.argv[5:]
timed = {}  # lockstep: (net, round, pair) -> {engine: ms}
if pairs_tsv:
    for l in list(open(pairs_tsv))[1:]:
        net, rnd, pair, eng, ms = l.split()
        timed.setdefault((net, rnd, pair), {})[eng] = float(ms)
rows = [l.rstrip("\n").split("\t") for l in open(raw)][1:]
def med(xs): return statistics.median(xs) if xs else None
def f(x, fmt): return "-" if x is None else fmt % x
def ratio(a, b): return None if a is None or b is None else a / b
print()
# min = fastest single run of any round: less sensitive to other people's load
# than the median, so it is shown next to it.
# paired = median over rounds of that round's medinfer/ORT ratio: the two
# processes of a round run back to back, so a drift in the machine's speed
# (shared hosts) cancels out of it better than out of the ratio of medians.
# With --lockstep it is the median over every pair of runs (each engine's
# timed run of one pair, seconds apart) of their ratio, its quartiles after it.
print("| network | mode | medinfer ms | ORT ms | latency ratio | paired ratio | min-latency ratio | medinfer peak MB | medinfer arena MB | ORT peak MB | memory ratio | GFLOP | medinfer GFLOP/s | ORT GFLOP/s |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
errors = []
for n in nets:
  gflop = json.load(open("%s/%s.json" % (out, n)))["flops"] / 1e9
  for eng in engines:
    r = {}
    for e in (eng, "ort"):
        ok = [x for x in rows if x[0] == n and x[2] == e and x[3] == "ok"]
        bad = [x for x in rows if x[0] == n and x[2] == e and x[3] != "ok"]
        r[e] = (med([float(x[4]) for x in ok]), med([float(x[5]) for x in ok]),
                med([float(x[6]) for x in ok if x[6] != "-"]), min([float(x[8]) for x in ok], default=None))
        if bad and (e != "ort" or eng == engines[0]):
            errors.append("%s %s: %s" % (n, e, bad[0][8] if len(bad[0]) > 8 else "failed"))
    (mt, mp, ma, mmin), (ot, op, _, omin) = r[eng], r["ort"]
    by_round = {}
    for x in rows:
        if x[0] == n and x[3] == "ok":
            by_round.setdefault(x[1], {})[x[2]] = float(x[4])
    paired = med([v[eng] / v["ort"] for v in by_round.values() if eng in v and "ort" in v])
    paired_s = f(paired, "%.2f")
    if timed:
        rs = sorted(v[eng] / v["ort"] for k, v in timed.items() if k[0] == n and eng in v and "ort" in v)
        paired = med(rs)
        if len(rs) >= 4:
            q = statistics.quantiles(rs, n=4)
            paired_s = "%.2f (%.2f-%.2f)" % (paired, q[0], q[2])
        else:
            paired_s = f(paired, "%.2f")
    gps = lambda ms: None if ms is None else gflop / (ms / 1e3)
    mode = "exact" if eng == "medinfer" else eng[len("medinfer-"):]
    print("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %s | %s |" % (
        n, mode, f(mt, "%.1f"), f(ot, "%.1f"), f(ratio(mt, ot), "%.2f"), paired_s, f(ratio(mmin, omin), "%.2f"),
        f(mp, "%.0f"), f(ma, "%.0f"),
        f(op, "%.0f"), f(ratio(mp, op), "%.2f"), gflop, f(gps(mt), "%.1f"), f(gps(ot), "%.1f")))
for e in errors:
    print("error:", e)
EOF
