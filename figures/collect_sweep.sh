#!/usr/bin/env bash
# Copy the small outputs of a sweep's finished runs into a figures folder and regenerate its report and table:
#   bash figures/collect_sweep.sh SWEEP_OUT FIG_DIR
# SWEEP_OUT/runs/DATASET/BACKBONE/ALGO/seedS/ (config, summary, log, curve) -> FIG_DIR/runs/...; the offline
# agents' summary and log -> FIG_DIR/pretrained/; SWEEP_OUT/sweep.json (the spec and every job's status) ->
# FIG_DIR; then gde-ref report over every finished fine-tune, and FIG_DIR/table.md (figures/sweep_table.py).
set -eu
sweep=${1:?usage: collect_sweep.sh SWEEP_OUT FIG_DIR}
here=${2:?usage: collect_sweep.sh SWEEP_OUT FIG_DIR}
finished=()
for d in "$sweep"/runs/*/*/*/seed*/; do
  [ -f "$d/summary.json" ] || continue
  rel=${d#"$sweep"/}
  mkdir -p "$here/$rel"
  cp "$d"/config.json "$d"/summary.json "$d"/log.csv "$d"/curve.png "$here/$rel"
  finished+=("$here/$rel")
done
for s in "$sweep"/pretrained/*/; do
  [ -f "$s/summary.json" ] || continue
  name=$(basename "$s")
  mkdir -p "$here/pretrained/$name"
  cp "$s"/summary.json "$s"/log.csv "$here/pretrained/$name/"
done
cp "$sweep/sweep.json" "$here/"
gde-ref report "${finished[@]}" --out "$here"
python "$(dirname "$0")/sweep_table.py" "$here/results.json" > "$here/table.md"
