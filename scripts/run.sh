#!/usr/bin/env bash
# Sets up the machine, builds molmo and answers a question about a photo:
#   scripts/run.sh [MODEL] [IMAGE] [PROMPT]
# MODEL defaults to allenai/MolmoE-1B-0924 when it is in the Hugging Face cache, else to the tiny
# random-weight test checkpoint shipped in tests/data (its answers are gibberish; it shows the
# pipeline works). IMAGE defaults to a photo shipped in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
MODEL=${1:-allenai/MolmoE-1B-0924}
IMAGE=${2:-tests/data/images/astronaut.png}
PROMPT=${3:-Describe this image.}
if ! ./build/molmo info "$MODEL" >/dev/null 2>&1; then
  echo "($MODEL is not available locally: using the tiny test model, whose answers are noise)"
  MODEL=tests/data/models/olmoe
fi
echo "molmo run -m $MODEL -i $IMAGE -p \"$PROMPT\""
./build/molmo run -m "$MODEL" -i "$IMAGE" -p "$PROMPT" -n 64
