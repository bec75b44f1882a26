#!/usr/bin/env bash
# molmo convert through the real binary: the GGUF it writes works in place of the checkpoint for
# every command (info, run, point), re-encoding a GGUF works, the layout is what ggml's reader
# demands (checked by an independent reader below), and bad arguments exit non-zero with one
# clear line and leave no file behind.
set -u
MOLMO=$1
DATA=$2
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$MOLMO" --help | grep -q "convert" || fail "--help does not list convert"
"$MOLMO" convert --help | grep -q -- "--vision-type" || fail "convert --help"

# f32: same answer and the same JSON (tokens, log-probs) as the checkpoint
"$MOLMO" convert "$DATA/models/olmoe" -o "$tmp/olmoe.gguf" --type f32 2> "$tmp/log" ||
  fail "convert f32: $(cat "$tmp/log")"
grep -q "^wrote $tmp/olmoe.gguf" "$tmp/log" || fail "no summary line: $(cat "$tmp/log")"
grep -q "100%" "$tmp/log" || fail "no plain progress lines off a terminal"
[ ! -e "$tmp/olmoe.gguf.part" ] || fail ".part left behind"
args=(-i "$DATA/images/tall_200x900.png" -p "Describe this image." -n 8 --json)
"$MOLMO" run -m "$DATA/models/olmoe" "${args[@]}" > "$tmp/a.json" || fail "run dir"
"$MOLMO" run -m "$tmp/olmoe.gguf" "${args[@]}" > "$tmp/b.json" || fail "run gguf"
python3 - "$tmp/a.json" "$tmp/b.json" <<'PY' || fail "gguf answer differs from the checkpoint's"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["tokens"] == b["tokens"] and a["text"] == b["text"], (a["text"], b["text"])
assert a["prompt_tokens"] == b["prompt_tokens"]
PY
# the magic decides, not the name
cp "$tmp/olmoe.gguf" "$tmp/model.bin"
"$MOLMO" info "$tmp/model.bin" | grep -q "MolmoE-1B-like" || fail "GGUF without .gguf name"

# q8_0 (vision default q8_0), then the q8_0 GGUF re-encoded as q4_0 with an f16 vision tower
"$MOLMO" convert "$DATA/models/qwen2" -o "$tmp/q8.gguf" -t q8_0 -q 2> "$tmp/log" || fail "q8_0"
[ ! -s "$tmp/log" ] || fail "-q printed: $(cat "$tmp/log")"
info=$("$MOLMO" info "$tmp/q8.gguf") || fail "info q8_0"
echo "$info" | grep -q "tensors     202: 119 f32 1 f16 82 q8_0" || fail "q8_0 types: $info"
echo "$info" | grep -q "689344 total" || fail "param count: $info"
"$MOLMO" convert "$tmp/q8.gguf" -o "$tmp/q4.gguf" -t q4_0 --vision-type f16 --name tiny -q ||
  fail "re-encode"
info=$("$MOLMO" info --json "$tmp/q4.gguf") || fail "info q4_0"
echo "$info" | python3 -c '
import json, sys
j = json.load(sys.stdin)
t = j["tensors"]
assert t["q4_0"] == 12 and t["q8_0"] == 3 and t["f16"] == 68 and t["f32"] == 119, t
assert j["has_tokenizer"] and j["has_preprocessor_config"]
' || fail "q4_0 types: $info"
"$MOLMO" point -m "$tmp/q4.gguf" -i "$DATA/images/tiny_50x30.png" "the dot" -n 4 > /dev/null ||
  fail "point on a GGUF"

# the same bytes for any thread count
"$MOLMO" convert "$DATA/models/olmoe" -o "$tmp/t1.gguf" -t q4_0 --threads 1 -q || fail "threads 1"
"$MOLMO" convert "$DATA/models/olmoe" -o "$tmp/t3.gguf" -t q4_0 --threads 3 -q || fail "threads 3"
cmp -s "$tmp/t1.gguf" "$tmp/t3.gguf" || fail "--threads 1 and 3 wrote different files"

# an independent reader: ggml's placement rules (packed offsets, padding, the alignment, names
# under 64 bytes) and the metadata
python3 - "$tmp/q4.gguf" <<'PY' || fail "layout"
import struct, sys, math
f = open(sys.argv[1], "rb").read()
pos = 0
def rd(fmt):
    global pos
    v = struct.unpack_from("<" + fmt, f, pos); pos += struct.calcsize("<" + fmt); return v[0]
def rs():
    global pos
    n = rd("Q"); s = f[pos:pos + n]; pos += n; return s
assert f[:4] == b"GGUF"; pos = 4
assert rd("I") == 3
nt, nkv = rd("Q"), rd("Q")
fixed = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q", 11: "q", 12: "d"}
kv = {}
for _ in range(nkv):
    k = rs().decode(); t = rd("I")
    if t == 9:
        et, n = rd("I"), rd("Q"); kv[k] = [rs() if et == 8 else rd(fixed[et]) for _ in range(n)]
    else:
        kv[k] = rs() if t == 8 else rd(fixed[t])
assert kv["general.architecture"] == b"molmo" and kv["general.name"] == b"tiny"
assert kv["general.file_type"] == 2 and kv["general.quantization_version"] == 2
assert kv["molmo.type"] == b"q4_0" and kv["molmo.vision_type"] == b"f16"
assert kv["molmo.d_model"] == 64 and kv["molmo.vit_layers"] == [8, 1]
assert b"<im_patch>" in kv["molmo.tokenizer_json"]
assert b"max_crops" in kv["molmo.preprocessor_config_json"]
align = kv["general.alignment"]
blocks = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 30: (1, 2)}
infos = []
for _ in range(nt):
    name = rs(); nd = rd("I"); ne = [rd("Q") for _ in range(nd)]
    infos.append((name, ne, rd("I"), rd("Q")))
pos += -pos % align
size = 0
for name, ne, t, off in infos:
    assert len(name) < 64, name
    assert off == size, (name, off, size)
    b, ts = blocks[t]
    assert ne[0] % b == 0
    size += -(-math.prod(ne) // b * ts // align) * align
assert pos + size == len(f), (pos + size, len(f))
PY

# errors: exit status, one line naming the problem, no output file
"$MOLMO" convert "$DATA/models/qwen2" 2> "$tmp/err" && fail "no -o exit 0"
grep -q -- "-o" "$tmp/err" || fail "no -o message: $(cat "$tmp/err")"
"$MOLMO" convert "$DATA/models/qwen2" -o "$tmp/x.gguf" -t q5_1 2> "$tmp/err" && fail "bad type"
grep -q "q5_1" "$tmp/err" || fail "bad type message: $(cat "$tmp/err")"
err=$("$MOLMO" convert /nonexistent -o "$tmp/x.gguf" 2>&1) && fail "missing model exit 0"
echo "$err" | grep -q "/nonexistent" || fail "missing model message: $err"
[ "$(echo "$err" | wc -l)" -eq 1 ] || fail "error is not one line: $err"
err=$("$MOLMO" convert "$DATA/models/qwen2" -o "$tmp/no/dir/x.gguf" 2>&1) && fail "bad out exit 0"
echo "$err" | tail -1 | grep -q "$tmp/no/dir/x.gguf.part" || fail "bad output message: $err"
[ ! -e "$tmp/x.gguf" ] || fail "x.gguf written"
echo "ok"
