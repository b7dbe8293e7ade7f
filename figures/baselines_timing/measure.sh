#!/usr/bin/env bash
# Time per laptop-preset fine-tune of every --algo, each run ALONE on the 2-core machine (one BLAS thread):
# each algo runs a shortened laptop run (the laptop preset's buffer and reporting, STEPS env steps, its
# evaluation stages where it has them), and the 50k-step time is extrapolated from its env steps per second
# (the per-step cost is flat after the first steps; fromscratch's 5k-step warm-up is inside its 10k steps).
# Offline agents: the IQL agent of seed 0 (hopper-medium, laptop), and AWAC / Cal-QL agents pretrained for a
# few steps here (their quality does not change a step's cost).
#   bash figures/baselines_timing/measure.sh /work/runs/pretrained/hopper-medium-laptop-seed0/offline.npz OUT
set -euo pipefail
IQL_AGENT=$1; OUT=$2
export OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT"
[ -f "$OUT/awac-agent/offline.npz" ] || gde-ref pretrain --backbone awac --dataset hopper-medium --steps 500 --out "$OUT/awac-agent" --json > /dev/null
[ -f "$OUT/calql-agent/offline.npz" ] || gde-ref pretrain --backbone calql --dataset hopper-medium --steps 50 --out "$OUT/calql-agent" --json > /dev/null
run() {  # algo backbone agent steps
    rm -rf "$OUT/$1"
    gde-ref finetune --dataset hopper-medium --algo "$1" --backbone "$2" --from "$3" --preset laptop --steps "$4" --report-period 5000 \
        --out "$OUT/$1" --json > "$OUT/$1.json"
    python - "$OUT/$1.json" "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:14s} {s['env_steps_per_second']:8.1f} env steps/s  -> {50000 / s['env_steps_per_second'] / 60:6.1f} min per 50k-step run")
PY
}
for algo in offline oniql iql gde reiql rnd bpiql jsrl qdagger pex iql-filter iql-per iql-balanced; do
    run $algo iql "$IQL_AGENT" 5000
done
run fromscratch iql "$IQL_AGENT" 10000
run sac-preload iql "$IQL_AGENT" 5000
run awac awac "$OUT/awac-agent/offline.npz" 5000
run calql calql "$OUT/calql-agent/offline.npz" 500
