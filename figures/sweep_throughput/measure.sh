#!/usr/bin/env bash
# Throughput of a 2-worker sweep (one BLAS thread per worker) against the same runs one after the other in one
# process with 2 BLAS threads, on the 2-core machine with nothing else running (issue 14):
#   bash figures/sweep_throughput/measure.sh /work/runs/pretrained OUT
# The runs: gde and oniql on hopper-medium, seeds 0 and 1, 4,000 env steps each (laptop preset otherwise),
# from the IQL offline agents of seeds 0 and 1 (laptop, 100k steps) copied into the sweep's layout.
set -euo pipefail
AGENTS=$1; OUT=$2
rm -rf "$OUT"; mkdir -p "$OUT/sweep/pretrained" "$OUT/serial"
for s in 0 1; do
  d="$OUT/sweep/pretrained/hopper-medium-iql-laptop-seed$s"
  mkdir -p "$d"; cp "$AGENTS/hopper-medium-laptop-seed$s"/{offline.npz,summary.json,log.csv} "$d/"
done
cat > "$OUT/spec.toml" <<'TOML'
datasets = ["hopper-medium"]
algos = ["oniql", "gde"]
seeds = "0-1"
preset = "laptop"
[overrides]
steps = [4000]
TOML
t0=$(date +%s.%N)
gde-ref sweep "$OUT/spec.toml" --out "$OUT/sweep" --workers 2 > "$OUT/sweep.log"
t1=$(date +%s.%N)
for s in 0 1; do for algo in oniql gde; do
  gde-ref finetune --dataset hopper-medium --algo $algo --seed $s --preset laptop --steps 4000 --blas-threads 2 \
      --from "$OUT/sweep/pretrained/hopper-medium-iql-laptop-seed$s/offline.npz" --out "$OUT/serial/$algo-s$s" --json > /dev/null
done; done
t2=$(date +%s.%N)
python - "$t0" "$t1" "$t2" "$OUT" <<'PY'
import json, sys, glob
t0, t1, t2 = map(float, sys.argv[1:4])
steps = 4 * 4000
print(f"2-worker sweep (1 BLAS thread each): {t1 - t0:.0f} s, {steps / (t1 - t0):.0f} env steps/s")
print(f"one process, runs in turn, 2 BLAS threads: {t2 - t1:.0f} s, {steps / (t2 - t1):.0f} env steps/s")
print(f"sweep / serial throughput: {(t2 - t1) / (t1 - t0):.2f}")
a = sorted(json.load(open(p))["final_normalized_score"] for p in glob.glob(sys.argv[4] + "/sweep/runs/*/*/*/*/summary.json"))
b = sorted(json.load(open(p))["final_normalized_score"] for p in glob.glob(sys.argv[4] + "/serial/*/summary.json"))
print(f"same scores either way: {a == b}")
PY
