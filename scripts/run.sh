#!/usr/bin/env bash
# The main job, from a fresh Debian machine: install packages, build, download MolmoE-1B from
# the Hugging Face hub (once), and have it point at something in a photo shipped in this
# repository, drawing the points.
#
#   scripts/run.sh [MODEL] [IMAGE] [WHAT]        defaults: allenai/MolmoE-1B-0924,
#                                                tests/data/images/chelsea.png, "the cat's eyes"
#   scripts/run.sh --tiny                        the same with the bundled tiny random-weight
#                                                test model: no download, answers are noise
#
# Honest numbers: MolmoE-1B is published as fp32, ~29 GB to download (about 5 min at 100 MB/s,
# 25 min at 20 MB/s; resumable, and skipped when the model is already in the Hugging Face cache).
# Its weights are memory-mapped: with less free RAM than ~30 GB the first answer is slow (the
# page cache keeps re-reading the file) until quantized conversion (issue #8) lands.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh

if [ "${1:-}" = "--tiny" ]; then
  MODEL=tests/data/models/olmoe
  shift
else
  MODEL=${1:-allenai/MolmoE-1B-0924}
  [ $# -gt 0 ] && shift
  if [ ! -d "$MODEL" ]; then
    echo "== molmo pull $MODEL (~29 GB for MolmoE-1B; already-cached files are skipped)"
    ./build/molmo pull "$MODEL"
  fi
fi
IMAGE=${1:-tests/data/images/chelsea.png}
WHAT=${2:-the cat\'s eyes}
OUT=molmo-point.png
echo "== molmo point -m $MODEL -i $IMAGE \"$WHAT\" --draw $OUT"
./build/molmo point -m "$MODEL" -i "$IMAGE" "$WHAT" --draw "$OUT"
echo "== points drawn on $OUT"
