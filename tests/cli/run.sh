#!/usr/bin/env bash
# molmo run end to end on the fixture models: the greedy answer equals the golden tokens, the
# streamed text equals the JSON text, and bad input exits non-zero with one clear line.
set -u
MOLMO=$1
DATA=$2
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$MOLMO" run --help | grep -q -- "--messages" || fail "run --help"

prompt=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["prompt"])' \
         "$DATA/golden/olmoe/tall_200x900_4x1.json")
"$MOLMO" run -m "$DATA/models/olmoe" -i "$DATA/images/tall_200x900.png" \
  -p "$prompt" -n 24 --json --top-logprobs 3 > "$tmp/out.json" || fail "run --json"
python3 - "$tmp/out.json" "$DATA/golden/olmoe/tall_200x900_4x1.json" <<'PY' || fail "golden tokens"
import json, sys
out = json.load(open(sys.argv[1])); gold = json.load(open(sys.argv[2]))
want = gold["generated_ids"][:-1] if gold["stopped_at_eos"] else gold["generated_ids"]
assert out["tokens"] == want, (out["tokens"], want)
assert out["stop"] == "eos"
assert out["prompt_tokens"] == gold["prompt_length"]
assert out["image"]["tiling"] == gold["tiling"] and out["image"]["crops"] == gold["n_crops"]
assert len(out["top_logprobs"]) == len(want) and len(out["top_logprobs"][0]) == 3
assert out["top_logprobs"][0][0]["id"] == gold["steps"][0]["top5"][0][0]
for k in ("load_ms", "image_ms", "prefill_ms", "decode_ms", "prefill_tok_s", "decode_tok_s"):
    assert k in out["timings"]
PY

# an f16 KV cache keeps this case's golden tokens (test_llm_parity measures all of them)
"$MOLMO" run -m "$DATA/models/olmoe" -i "$DATA/images/tall_200x900.png" \
  -p "$prompt" -n 24 --json --kv-type f16 > "$tmp/out16.json" || fail "run --kv-type f16"
python3 - "$tmp/out.json" "$tmp/out16.json" <<'PY' || fail "f16 KV tokens"
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert a["tokens"] == b["tokens"], (a["tokens"], b["tokens"])
PY
"$MOLMO" run --help | grep -q -- "--kv-type" || fail "run --help: --kv-type"

# --no-mmap: the weights read into memory give the same answer, log-probabilities included
for m in "" --no-mmap; do
  "$MOLMO" run -m "$DATA/models/olmoe" -i "$DATA/images/tiny_50x30.png" -p "$prompt" -n 8 \
    --json --top-logprobs 2 $m > "$tmp/mmap$m.json" || fail "run $m"
done
python3 - "$tmp/mmap.json" "$tmp/mmap--no-mmap.json" <<'PY' || fail "--no-mmap changed the answer"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
a.pop("timings"), b.pop("timings")
assert a == b, (a, b)
PY
"$MOLMO" run --help | grep -q -- "--no-mmap" || fail "run --help: --no-mmap"
# and a q4_0 GGUF, whose --no-mmap copy is interleaved for the kernels: the same answer again,
# also with --no-repack
"$MOLMO" convert "$DATA/models/olmoe" -o "$tmp/q4.gguf" --type q4_0 > /dev/null 2>&1 ||
  fail "convert q4_0"
for m in "" "--no-mmap" "--no-mmap --no-repack"; do
  "$MOLMO" run -m "$tmp/q4.gguf" -i "$DATA/images/tiny_50x30.png" -p "$prompt" -n 8 \
    --json --top-logprobs 2 $m > "$tmp/q4${m// /}.json" || fail "run q4_0 $m"
done
python3 - "$tmp/q4.json" "$tmp/q4--no-mmap.json" "$tmp/q4--no-mmap--no-repack.json" <<'PY' ||
import json, sys
a, b, c = (json.load(open(p)) for p in sys.argv[1:4])
for x in (a, b, c): x.pop("timings")
assert a == b == c, (a, b, c)
PY
  fail "--no-mmap changed a q4_0 answer"
"$MOLMO" run --help | grep -q -- "--no-repack" || fail "run --help: --no-repack"

# bf16 activations on the bf16 checkpoint keep its golden tokens (test_gguf_convert measures
# the distributions)
"$MOLMO" run -m "$DATA/models/qwen2-bf16" -i "$DATA/images/tiny_50x30.png" \
  -p "Describe this image." -n 16 --json --top-logprobs 1 --bf16-activations > "$tmp/act.json" ||
  fail "run --bf16-activations"
"$MOLMO" run -m "$DATA/models/qwen2-bf16" -i "$DATA/images/tiny_50x30.png" \
  -p "Describe this image." -n 16 --json --top-logprobs 1 > "$tmp/noact.json" || fail "run bf16"
python3 - "$tmp/act.json" "$tmp/noact.json" "$DATA/golden/qwen2-bf16/tiny_50x30.json" <<'PY' ||
import json, sys
act, f32, gold = (json.load(open(p)) for p in sys.argv[1:4])
assert act["tokens"] == gold["generated_ids"][:16], (act["tokens"], gold["generated_ids"][:16])
a = [s[0]["logprob"] for s in act["top_logprobs"]]
b = [s[0]["logprob"] for s in f32["top_logprobs"]]
assert a != b, "--bf16-activations changed nothing"  # the option reaches the model
assert max(abs(x - y) for x, y in zip(a, b)) < 0.1, (a, b)
PY
  fail "bf16 activations tokens"
"$MOLMO" run --help | grep -q -- "--bf16-activations" || fail "run --help: --bf16-activations"

# streaming text == JSON text (multi-turn through --messages)
cat > "$tmp/msgs.json" <<'JS'
[{"role": "user", "content": "What is this?"}, {"role": "assistant", "content": "A test."},
 {"role": "user", "content": "Say more."}]
JS
streamed=$("$MOLMO" run -m "$DATA/models/qwen2" --messages "$tmp/msgs.json" -n 12) || fail "stream"
text=$("$MOLMO" run -m "$DATA/models/qwen2" --messages "$tmp/msgs.json" -n 12 --json |
       python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])') || fail "json"
[ "$streamed" = "$text" ] || fail "streamed '$streamed' != json '$text'"

# errors: non-zero exit, one line naming the problem
check_err() { # expected-substring, command...
  local want=$1; shift
  local out
  out=$("$@" 2>&1 >/dev/null) && fail "exit 0: $*"
  echo "$out" | grep -q -- "$want" || fail "message for $*: $out"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "not one line: $out"
}
check_err "nope.png" "$MOLMO" run -m "$DATA/models/qwen2" -i "$tmp/nope.png" -p hi
printf 'not an image' > "$tmp/bad.png"
check_err "bad.png" "$MOLMO" run -m "$DATA/models/qwen2" -i "$tmp/bad.png" -p hi
echo '[{"role": "user"' > "$tmp/bad.json"
check_err "bad.json" "$MOLMO" run -m "$DATA/models/qwen2" --messages "$tmp/bad.json"
check_err "context" "$MOLMO" run -m "$DATA/models/qwen2" -p "a long question that will not fit" --ctx 16
check_err "/nonexistent" "$MOLMO" run -m /nonexistent -p hi
check_err "--temperature" "$MOLMO" run -m "$DATA/models/qwen2" -p hi --temperature abc
check_err "--kv-type" "$MOLMO" run -m "$DATA/models/qwen2" -p hi --kv-type q8_0
echo ok
