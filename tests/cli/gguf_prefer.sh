#!/usr/bin/env bash
# `molmo convert REPO` without -o writes $MOLMO_GGUF_DIR/ORG_NAME.TYPE.gguf, and the generating
# commands then prefer that file for the repo id and say so.
set -u
MOLMO=$1
DATA=$2
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HF_HUB_CACHE="$tmp/hub" MOLMO_GGUF_DIR="$tmp/gguf"
repo="$HF_HUB_CACHE/models--test-org--tiny"
mkdir -p "$repo/refs" "$repo/snapshots"
echo abc123 > "$repo/refs/main"
ln -s "$(cd "$DATA/models/qwen2" && pwd)" "$repo/snapshots/abc123"

"$MOLMO" run -m test-org/tiny -p hi -n 2 2>"$tmp/err1" >/dev/null || fail "run from the cache"
grep -q "using the converted" "$tmp/err1" && fail "preferred a GGUF that does not exist"
"$MOLMO" convert test-org/tiny --type q8_0 -q || fail "convert without -o"
[ -f "$MOLMO_GGUF_DIR/test-org_tiny.q8_0.gguf" ] || fail "default output path"
"$MOLMO" run -m test-org/tiny -p hi -n 2 2>"$tmp/err2" >/dev/null || fail "run with the GGUF"
grep -q "using the converted $MOLMO_GGUF_DIR/test-org_tiny.q8_0.gguf" "$tmp/err2" ||
  fail "choice not printed: $(cat "$tmp/err2")"
# a local directory is never replaced
"$MOLMO" run -m "$DATA/models/qwen2" -p hi -n 2 2>"$tmp/err3" >/dev/null || fail "run dir"
grep -q "using the converted" "$tmp/err3" && fail "a directory was replaced"
echo ok
