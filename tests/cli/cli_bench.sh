#!/usr/bin/env bash
# molmo bench through the real binary, on the tiny fixture (seconds): the table has the rows of
# the stages asked for and no others, at every thread count listed, with positive figures and
# ratios; --json carries the same; a generated full-size model (sparse zeros: no disk, no wait)
# is made once and then reused; bad options exit non-zero with one line saying what is wrong.
set -u
MOLMO=$1
DATA=$2
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$MOLMO" --help | grep -q "bench" || fail "--help does not list bench"
"$MOLMO" bench --help | grep -q -- "--stages" || fail "bench --help"

# machine + decode at 1 and 2 threads
"$MOLMO" bench --model "$DATA/models/olmoe" --stages machine,decode --tokens 4 --reps 1 \
  --read-mib 16 --threads 1,2 > "$tmp/md" 2> "$tmp/err" || fail "bench: $(cat "$tmp/err")"
for t in 1 2; do
  for row in "| machine | $t | memory read bandwidth (16 MiB) |" "| machine | $t | f32 FMA peak (" \
             "| machine | $t | int8 vpdpbusd peak (" "| machine | $t | bf16 vdpbf16ps peak (" \
             "| decode | $t | 4 tokens after "; do
    grep -qF "$row" "$tmp/md" || fail "no row '$row':
$(cat "$tmp/md")"
  done
  # the share of the mapped weights in 2 MiB pages, where /proc/self/smaps tells it
  grep -qE "^\| machine \| $t \| read bandwidth of the weights \(mapped file, 16 MiB spread over it(, [0-9]+% in 2 MiB pages)?\) \|" \
    "$tmp/md" || fail "no weights row at $t threads: $(cat "$tmp/md")"
done
grep -qE "^\| (vision|prefill|e2e) " "$tmp/md" && fail "stages not asked for ran: $(cat "$tmp/md")"
[ "$(grep -cE '^\| (machine|vision|prefill|decode|e2e) \|' "$tmp/md")" -eq 12 ] ||
  fail "expected 12 rows: $(cat "$tmp/md")"
grep -q "bench: decode, 2 threads" "$tmp/err" || fail "no progress lines on stderr"
grep -qE "^- build: commit [0-9a-f]+(-dirty)? \(|^- build: commit unknown \(" "$tmp/md" ||
  fail "no build line: $(head -5 "$tmp/md")"
# every row ends with the stage's memory: a peak resident set and the private memory
[ "$(grep -cE '\| peak [0-9.]+ (MiB|GiB), private [0-9.]+ (MiB|GiB) \|$' "$tmp/md")" -eq 12 ] ||
  fail "memory column: $(cat "$tmp/md")"
# every read bandwidth and FMA figure is a positive number; decode has tok/s, GB/s and % of read bw
awk -F'|' '/read bandwidth|f32 FMA peak/ { split($5, a, " "); if (a[1] + 0 <= 0) bad = 1 }
           /\| decode \|/ { if ($5 !~ /tok\/s/ || $6 !~ /GB\/s/ || $7 !~ /% of read bw, [0-9]+% of the weights. read bw/) bad = 1 }
           END { exit bad }' "$tmp/md" || fail "figures: $(cat "$tmp/md")"
# decode's traffic counts the weights and the KV cache (f32 by default; f16 halves it)
grep -qE "^\| decode \| 1 \| 4 tokens after [0-9]+ \(f32; [0-9.]+ GB weights \+ [0-9.]+ GB f32 KV per token\)" \
  "$tmp/md" || fail "decode traffic: $(cat "$tmp/md")"
grep -q "; f32 KV cache$" "$tmp/md" || fail "no KV cache type in the header: $(head -8 "$tmp/md")"
grep -q "^- file: .* (mapped)$" "$tmp/md" || fail "no mapping in the header: $(head -8 "$tmp/md")"
# --no-mmap: the weights read into the process's memory, said in the header and the row
"$MOLMO" bench --model "$DATA/models/olmoe" --stages machine,decode --tokens 2 --reps 1 \
  --threads 1 --read-mib 16 --no-mmap -q > "$tmp/nm" || fail "bench --no-mmap"
grep -q "^- file: .* (read into the process's memory: --no-mmap)$" "$tmp/nm" ||
  fail "--no-mmap header: $(head -8 "$tmp/nm")"
grep -qE "^\| machine \| 1 \| read bandwidth of the weights \(in process memory, 16 MiB spread over it(, [0-9]+% in 2 MiB pages)?\) \|" "$tmp/nm" ||
  fail "--no-mmap row: $(cat "$tmp/nm")"
# a q4_0 GGUF read with --no-mmap: its matrices interleaved for the SIMD kernels, said in the
# header and the JSON; none with --no-repack, nor on the reference kernels
"$MOLMO" convert "$DATA/models/olmoe" -o "$tmp/q4.gguf" --type q4_0 > /dev/null 2>&1 || fail "convert q4_0"
for r in "" --no-repack; do
  "$MOLMO" bench --model "$tmp/q4.gguf" --stages decode --tokens 2 --reps 1 --threads 1 --no-mmap \
    $r --json -q > "$tmp/q4$r.json" || fail "bench q4_0 --no-mmap $r"
done
python3 - "$tmp/q4.json" "$tmp/q4--no-repack.json" <<'PY' || fail "interleaved: $(cat "$tmp/q4.json")"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["no_mmap"] and b["no_mmap"]
assert (a["interleaved_matrices"] > 0) == (a["kernels"] != "ref"), a
assert b["interleaved_matrices"] == 0, b
PY
"$MOLMO" bench --model "$tmp/q4.gguf" --stages decode --tokens 2 --reps 1 --threads 1 --no-mmap \
  -q > "$tmp/q4.md" || fail "bench q4_0 --no-mmap (markdown)"
grep -qE "^- file: .* \(read into the process's memory: --no-mmap(; [0-9]+ q8_0 / q4_0 matrices interleaved by 16 rows for the kernels)?\)$" \
  "$tmp/q4.md" || fail "interleaved header: $(head -8 "$tmp/q4.md")"
"$MOLMO" bench --help | grep -q -- "--no-repack" || fail "bench --help: --no-repack"
# --bf16-activations: the header says what it changes on this CPU (AMX-BF16 or not)
"$MOLMO" bench --model "$DATA/models/olmoe" --stages decode --tokens 2 --reps 1 --threads 1 \
  --bf16-activations -q > "$tmp/mb" || fail "bench --bf16-activations"
grep -qE "; bf16 activations \(bf16 matmuls, attention; quantized GEMMs (on AMX-BF16 tiles, weights rounded to bf16|keep int8)\)$" \
  "$tmp/mb" || fail "bf16 activations header: $(head -8 "$tmp/mb")"
"$MOLMO" bench --model "$DATA/models/olmoe" --stages decode --tokens 4 --reps 1 --threads 1 \
  --kv-type f16 --json -q > "$tmp/j16" || fail "bench --kv-type f16"
python3 - "$tmp/j16" <<'PY' || fail "f16 json: $(cat "$tmp/j16")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["kv_type"] == "f16", j
d = [r for r in j["rows"] if r["stage"] == "decode"][0]
assert "GB f16 KV per token" in d["measure"] and d["value"] > 0, d
h = j["machine"][0]["weights_huge_share"]  # decode's baseline read the weights: None where
assert h is None or 0 <= h <= 1, j["machine"]  # /proc/self/smaps cannot tell
PY

# the other stages, as JSON
"$MOLMO" bench -m "$DATA/models/olmoe" --stages vision,prefill,e2e -n 2 --reps 2 --read-mib 16 \
  --threads 1 --json -q > "$tmp/j" 2> "$tmp/err" || fail "json: $(cat "$tmp/err")"
[ ! -s "$tmp/err" ] || fail "-q printed: $(cat "$tmp/err")"
python3 - "$tmp/j" <<'PY' || fail "json content: $(cat "$tmp/j")"
import json, sys
j = json.load(open(sys.argv[1]))
rows = {r["stage"]: r for r in j["rows"]}
assert sorted(rows) == ["e2e", "prefill", "vision"], rows.keys()
assert j["prompt_tokens"] > 700 and j["crops"] == 7 and j["image"] == [640, 480], j
assert j["model"]["llm_type"] == "f32" and j["model"]["weights"] is None
m = j["machine"][0]
assert m["threads"] == 1 and m["fma_gflops"] > 0 and m["read_gbs"] == 0  # decode not asked
assert m["weights_huge_share"] is None, m  # nor the weights' read
assert m["quant_bf16"] in (True, False), m  # quantized GEMMs on AMX-BF16 under bf16 activations
v, p, e = rows["vision"], rows["prefill"], rows["e2e"]
assert v["unit"] == "s" and v["value"] > 0 and v["rate_unit"] == "GFLOP/s" and v["pct_fma"] > 0
assert p["unit"] == "tok/s" and p["value"] > 0 and p["rate_unit"] == "GOP/s" and p["rate"] > 0
assert e["unit"] == "s" and e["value"] > 0 and "prefill" in e["note"]
assert all("target" not in r for r in j["rows"])  # the fixture has no released model's shapes
assert j["build"].startswith("commit "), j["build"]
assert all(r["peak_rss_mib"] > 0 and r["private_mib"] >= 0 for r in j["rows"]), j["rows"]
PY

# a generated full-size MolmoE-1B (sparse zeros, the bf16 checkpoint itself): made, then reused
gen=(--model molmoe-1b --weights zeros --type bf16 --dir "$tmp/models" --stages machine
     --read-mib 16 --reps 1)
"$MOLMO" bench "${gen[@]}" > "$tmp/g1" 2> "$tmp/err" || fail "generate: $(cat "$tmp/err")"
grep -q "writing $tmp/models/molmoe-1b-zeros" "$tmp/err" || fail "not generated: $(cat "$tmp/err")"
grep -q "molmoe-1b (allenai/MolmoE-1B-0924 shapes), zeros weights" "$tmp/g1" || fail "header"
grep -q "language model bf16, vision bf16" "$tmp/g1" || fail "types: $(cat "$tmp/g1")"
[ -f "$tmp/models/molmoe-1b-zeros/molmo-bench.json" ] || fail "no record written"
"$MOLMO" bench "${gen[@]}" > /dev/null 2> "$tmp/err" || fail "reuse: $(cat "$tmp/err")"
grep -q "reusing $tmp/models/molmoe-1b-zeros" "$tmp/err" || fail "not reused: $(cat "$tmp/err")"

# errors: non-zero exit and one line naming the problem
check_err() { # expected-text args...
  local want=$1
  shift
  local out
  out=$("$MOLMO" bench "$@" 2>&1 > /dev/null) && fail "exit 0 for: $*"
  echo "$out" | grep -qF -- "$want" || fail "message for $* lacks '$want': $out"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "not one line for $*: $out"
}
check_err "unknown model 'molmo-13b'" --model molmo-13b
check_err "q5_1" --type q5_1
check_err "unknown stage 'vison'" --model "$DATA/models/olmoe" --stages machine,vison
check_err "--threads" --threads 0
check_err "--kv-type" --kv-type bf16
check_err "--threads" --threads 1,,x
check_err "--image" --image 640x0
check_err "--reps" --reps 0
check_err "apply to generated models" --model "$DATA/models/olmoe" --type q8_0
check_err "no positional argument" "$DATA/models/olmoe"
touch "$tmp/file"
check_err "cannot create $tmp/file/sub" --model molmoe-1b --weights zeros --dir "$tmp/file/sub"
check_err "/nonexistent" --model /nonexistent/model --stages machine
echo "ok"
