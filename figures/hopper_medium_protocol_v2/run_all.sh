#!/usr/bin/env bash
# The hopper-medium runs of figures/hopper_medium_protocol_v2, laptop preset, 5 seeds, resumable:
#   bash figures/hopper_medium_protocol_v2/run_all.sh RUNS_DIR    (start it twice for two workers)
# A worker takes the next job that is neither finished (summary.json) nor held by another worker (a lock
# directory), resumes it if it has a checkpoint, and runs it with one BLAS thread. Offline agents:
#   gde-ref pretrain --dataset hopper-medium --preset laptop --seed S --out RUNS_DIR/pretrained/hopper-medium-laptop-seedS
set -u
runs=${1:?usage: run_all.sh RUNS_DIR}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
algos="gde oniql iql reiql rnd offline"
ablations="gde-no-exploit gde-no-explore gde-no-teacher"
jobs=""
for s in 0 1 2 3 4; do for a in $algos; do jobs="$jobs $a:$s"; done; done
for s in 0 1 2 3 4; do for a in $ablations; do jobs="$jobs $a:$s"; done; done
mkdir -p "$runs/ft" "$runs/locks"
for job in $jobs; do
  algo=${job%%:*}; seed=${job##*:}
  out="$runs/ft/$algo-s$seed"; agent="$runs/pretrained/hopper-medium-laptop-seed$seed/offline.npz"
  [ -f "$out/summary.json" ] && continue
  mkdir "$runs/locks/$algo-s$seed" 2>/dev/null || continue
  while [ ! -f "$agent" ]; do sleep 30; done
  if [ -f "$out/checkpoint.npz" ]; then
    gde-ref finetune --out "$out" --resume --json > "$runs/locks/$algo-s$seed.log" 2>&1
  else
    gde-ref finetune --dataset hopper-medium --algo "$algo" --preset laptop --seed "$seed" --from "$agent" \
      --out "$out" --json > "$runs/locks/$algo-s$seed.log" 2>&1
  fi
  rmdir "$runs/locks/$algo-s$seed"
done
