#!/usr/bin/env bash
# molmo info / --help / errors through the real binary.
set -u
MOLMO=$1
DATA=$2
fail() { echo "FAIL: $*"; exit 1; }

"$MOLMO" --help | grep -q "info" || fail "--help does not list info"
"$MOLMO" info --help | grep -q -- "--json" || fail "info --help"
"$MOLMO" --version | grep -q "molmo" || fail "--version"

out=$("$MOLMO" info "$DATA/models/qwen2") || fail "info qwen2 exit"
echo "$out" | grep -q "Molmo-7B-D/72B-like" || fail "family"
echo "$out" | grep -q "689344 total" || fail "param count"

json=$("$MOLMO" info --json "$DATA/models/olmoe") || fail "info --json exit"
echo "$json" | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["family"] == "MolmoE-1B-like", j["family"]
assert j["llm"]["n_experts"] == 8 and j["llm"]["n_experts_used"] == 2
assert j["params"]["total"] == 1057472, j["params"]
assert j["tensors"]["f32"] == j["tensors"]["count"]
' || fail "json content"

# errors: non-zero exit, one line naming the problem
err=$("$MOLMO" info /nonexistent 2>&1) && fail "missing model exit 0"
echo "$err" | grep -q "/nonexistent" || fail "missing model message: $err"
[ "$(echo "$err" | wc -l)" -eq 1 ] || fail "error is not one line: $err"
"$MOLMO" info 2>/dev/null && fail "no args exit 0"
"$MOLMO" bogus 2>/dev/null && fail "unknown command exit 0"
echo "ok"
