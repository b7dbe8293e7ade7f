#!/usr/bin/env bash
# Copy the small outputs of every finished run under RUNS_DIR into OUT_DIR and regenerate its report:
#   bash figures/collect.sh RUNS_DIR OUT_DIR
# RUNS_DIR/ft/*/ (fine-tunes: config, summary, log, curve) -> OUT_DIR/runs/; RUNS_DIR/pretrained/*/ (summary,
# log) -> OUT_DIR/pretrained/; then gde-ref report (against env steps, and against exploration steps).
set -eu
runs=${1:?usage: collect.sh RUNS_DIR OUT_DIR}
here=${2:?usage: collect.sh RUNS_DIR OUT_DIR}
finished=()
for d in "$runs"/ft/*/; do
  name=$(basename "$d")
  [ -f "$d/summary.json" ] || continue
  mkdir -p "$here/runs/$name"
  cp "$d"/config.json "$d"/summary.json "$d"/log.csv "$d"/curve.png "$here/runs/$name/"
  finished+=("$here/runs/$name")
done
for s in "$runs"/pretrained/*/; do
  name=$(basename "$s")
  [ -f "$s/summary.json" ] || continue
  mkdir -p "$here/pretrained/$name"
  cp "$s"/summary.json "$s"/log.csv "$here/pretrained/$name/"
done
gde-ref report "${finished[@]}" --out "$here"
gde-ref report "${finished[@]}" --out "$here/by_exploration_steps" --x exploration_steps > /dev/null
