#!/usr/bin/env bash
# Copy the small outputs of every finished run of run_all.sh into this folder and regenerate the report:
#   bash figures/hopper_medium_protocol_v2/collect.sh RUNS_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../collect.sh" "${1:?usage: collect.sh RUNS_DIR}" "$here"
