#!/usr/bin/env bash
# Copy the small outputs of every finished run of run_all.sh into this folder and regenerate the report:
#   bash figures/table3_backbones/collect.sh RUNS_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../collect.sh" "${1:?usage: collect.sh RUNS_DIR}" "$here"
