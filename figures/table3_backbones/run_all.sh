#!/usr/bin/env bash
# Table 3 (GDE on other backbones), laptop preset, seeds 0-2, resumable:
#   bash figures/table3_backbones/run_all.sh RUNS_DIR [BACKBONES] [DATASETS]    (start it twice for two workers)
# defaults: BACKBONES="td3bc", DATASETS="hopper-medium walker2d-medium". Jobs, in order: the datasets, the
# offline agents (gde-ref pretrain --backbone B) of a dataset, then its offline / naive / gde fine-tunes, dataset by dataset.
# A worker takes the next job that is neither finished nor held by another worker (a lock directory),
# resumes it from its checkpoint if it has one, and runs it with one BLAS thread. After a crash: rm -r RUNS/locks.
set -u
runs=${1:?usage: run_all.sh RUNS_DIR [BACKBONES] [DATASETS]}
backbones=${2:-td3bc}
datasets=${3:-hopper-medium walker2d-medium}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$runs/ft" "$runs/locks" "$runs/pretrained"
claim() { mkdir "$runs/locks/$1" 2>/dev/null; }
release() { rmdir "$runs/locks/$1"; }
have() { python -c "from gde_ref.data.datasets import load_dataset; load_dataset('$1')" 2>/dev/null; }
for d in $datasets; do    # a dataset is made once (15 s from the shipped behaviour policy)
  if claim "data-$d"; then
    have "$d" || gde-ref make-dataset "$d" --preset laptop --seed 0 > "$runs/locks/data-$d.log" 2>&1
    release "data-$d"
  fi
done
jobs=""    # dataset by dataset: its offline agents, then its fine-tunes (the first dataset's results come first)
for d in $datasets; do for b in $backbones; do
  for s in 0 1 2; do jobs="$jobs pre:$b:$d:$s"; done
  for s in 0 1 2; do for a in offline naive gde; do jobs="$jobs ft:$b:$d:$s:$a"; done; done
done; done
for job in $jobs; do
  IFS=: read -r kind b d s a <<< "$job"
  agent_dir="$runs/pretrained/$d-$b-laptop-seed$s"
  if [ "$kind" = pre ]; then
    name="pre-$d-$b-s$s"
    [ -f "$agent_dir/offline.npz" ] && continue
    claim "$name" || continue
    until have "$d"; do sleep 30; done
    extra=""; [ -f "$agent_dir/checkpoint.npz" ] && extra="--resume"
    gde-ref pretrain --dataset "$d" --backbone "$b" --preset laptop --seed "$s" --out "$agent_dir" $extra --json \
      > "$runs/locks/$name.log" 2>&1
    release "$name"
  else
    name="$b-$a-$d-s$s"; out="$runs/ft/$name"
    [ -f "$out/summary.json" ] && continue
    claim "$name" || continue
    while [ ! -f "$agent_dir/offline.npz" ]; do sleep 30; done
    if [ -f "$out/checkpoint.npz" ]; then
      gde-ref finetune --out "$out" --resume --json > "$runs/locks/$name.log" 2>&1
    else
      gde-ref finetune --dataset "$d" --backbone "$b" --algo "$a" --preset laptop --seed "$s" \
        --from "$agent_dir/offline.npz" --out "$out" --json > "$runs/locks/$name.log" 2>&1
    fi
    release "$name"
  fi
done
