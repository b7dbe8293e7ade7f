#!/usr/bin/env bash
# Copy the small outputs of every finished run of run_all.sh into this folder and regenerate the report:
#   bash figures/table3_backbones/collect.sh RUNS_DIR
set -eu
runs=${1:?usage: collect.sh RUNS_DIR}
here=$(cd "$(dirname "$0")" && pwd)
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
