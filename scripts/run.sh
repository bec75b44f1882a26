#!/usr/bin/env bash
# The main job, from a fresh Debian machine: install packages, build, download MolmoE-1B from
# the Hugging Face hub (once), convert it once to a q8_0 GGUF that fits a laptop's memory
# (7.7 GB instead of 29 GB), and have it point at something in a photo shipped in this
# repository, drawing the points.
#
#   scripts/run.sh [MODEL] [IMAGE] [WHAT]        defaults: allenai/MolmoE-1B-0924,
#                                                tests/data/images/chelsea.png, "the cat's eyes"
#   scripts/run.sh --tiny                        the same with the bundled tiny random-weight
#                                                test model: no download, answers are noise
#
# Honest numbers: MolmoE-1B is published as fp32, ~29 GB to download (about 5 min at 100 MB/s,
# 25 min at 20 MB/s; resumable, and skipped when the model is already in the Hugging Face cache).
# The conversion reads those 29 GB once (a few minutes, depending on the disk) and writes
# ~7.7 GB to $MOLMO_GGUF_DIR (default ~/.cache/molmo); later runs reuse the file.
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
  if [ ! -e "$MODEL" ]; then
    echo "== molmo pull $MODEL (~29 GB for MolmoE-1B; already-cached files are skipped)"
    ./build/molmo pull "$MODEL"
    GGUF_DIR=${MOLMO_GGUF_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/molmo}
    if [ ! -f "$GGUF_DIR/$(echo "$MODEL" | tr '/' '_').q8_0.gguf" ]; then
      echo "== molmo convert $MODEL --type q8_0 (once; into $GGUF_DIR, where molmo finds it)"
      ./build/molmo convert "$MODEL" --type q8_0
    fi
  fi
fi
IMAGE=${1:-tests/data/images/chelsea.png}
WHAT=${2:-the cat\'s eyes}
OUT=molmo-point.png
echo "== molmo point -m $MODEL -i $IMAGE \"$WHAT\" --draw $OUT"
./build/molmo point -m "$MODEL" -i "$IMAGE" "$WHAT" --draw "$OUT"
echo "== points drawn on $OUT"
