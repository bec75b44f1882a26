#!/usr/bin/env bash
# Sets up the machine, builds molmo and runs the main job on MODEL (default: the MolmoE-1B
# checkpoint if it is in the Hugging Face cache, else the tiny bundled test model).
# Today the main job is `molmo info` (load, validate, describe); answering, pointing and
# downloading are the next milestones (see README "Status").
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
MODEL=${1:-allenai/MolmoE-1B-0924}
if ! ./build/molmo info "$MODEL" 2>/dev/null; then
  echo "($MODEL is not available locally; showing the bundled test model instead)"
  ./build/molmo info tests/data/models/olmoe
fi
