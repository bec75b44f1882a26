#!/usr/bin/env bash
# molmo convert --type q4_k / q6_k through the real binary: the type names (ggml's spelling
# too), the fallback of the 64-wide fixture's matrices to q8_0 (rows are not whole 256-value
# blocks), general.file_type / molmo.type in the file, a run of the converted model, and a bad
# --vision-type refused with one line. The K kernels themselves: tests/unit/test_*kquant.c.
set -u
MOLMO=$1
DATA=$2
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$MOLMO" convert --help | grep -q "q4_k" || fail "convert --help does not list q4_k"
"$MOLMO" convert "$DATA/models/qwen2" -o "$tmp/k4.gguf" -t q4_k -q 2> "$tmp/log" || fail "q4_k: $(cat "$tmp/log")"
"$MOLMO" convert "$DATA/models/qwen2" -o "$tmp/k6.gguf" -t Q6_K --vision-type q4_k -q 2> "$tmp/log" ||
  fail "Q6_K: $(cat "$tmp/log")"
for f in k4 k6; do
  info=$("$MOLMO" info "$tmp/$f.gguf") || fail "info $f"
  echo "$info" | grep -q "tensors     202: 119 f32 1 f16 82 q8_0" || fail "$f types: $info"
done
python3 - "$tmp/k4.gguf" "$tmp/k6.gguf" <<'PY' || fail "metadata"
import struct, sys
def kv(path):
    d = open(path, "rb").read()
    assert d[:4] == b"GGUF"
    n_kv = struct.unpack_from("<Q", d, 16)[0]
    o, out = 24, {}
    for _ in range(n_kv):
        n = struct.unpack_from("<Q", d, o)[0]; key = d[o + 8:o + 8 + n].decode(); o += 8 + n
        t = struct.unpack_from("<I", d, o)[0]; o += 4
        if t == 8:
            n = struct.unpack_from("<Q", d, o)[0]; out[key] = d[o + 8:o + 8 + n]; o += 8 + n
        elif t in (4, 5, 6):
            out[key] = struct.unpack_from("<I", d, o)[0]; o += 4
        elif t == 7:
            o += 1
        elif t == 9:
            et, cnt = struct.unpack_from("<IQ", d, o); o += 12
            assert et in (4, 5), et
            o += 4 * cnt
        else:
            raise SystemExit("unexpected type %d" % t)
    return out
a, b = kv(sys.argv[1]), kv(sys.argv[2])
assert a["general.file_type"] == 15 and a["molmo.type"] == b"q4_k" and a["molmo.vision_type"] == b"q8_0", a
assert b["general.file_type"] == 18 and b["molmo.type"] == b"q6_k" and b["molmo.vision_type"] == b"q4_k", b
PY
"$MOLMO" run -m "$tmp/k4.gguf" -p "Hello" -n 4 > /dev/null || fail "run q4_k file"
if "$MOLMO" convert "$DATA/models/qwen2" -o "$tmp/bad.gguf" --vision-type q5_k 2> "$tmp/log"; then
  fail "q5_k accepted"
fi
grep -q "q6_k or q4_k" "$tmp/log" || fail "bad type message: $(cat "$tmp/log")"
[ ! -e "$tmp/bad.gguf" ] || fail "file left behind"
echo ok
