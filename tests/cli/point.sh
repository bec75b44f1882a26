#!/usr/bin/env bash
# molmo point / count / caption / points end to end (issue 7). The fixture models answer
# gibberish, so the verbs are checked for their plumbing: the trained prompt templates (and
# -p overriding them), the JSON shape, the streamed text, --draw writing an image that
# decodes; `molmo points` is checked on real-looking answers with exact values; errors exit
# non-zero with one line naming the problem.
set -u
MOLMO=$1
DATA=$2
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
IMG="$DATA/images/chelsea.png"   # 451 x 300
SMALL="$DATA/images/tiny_50x30.png"
Q="$DATA/models/qwen2"
FAST="-n 6 --max-crops 1"         # the plumbing, not the model, is under test: keep runs short

"$MOLMO" --help | grep -q "^  point " || fail "point not in molmo --help"
"$MOLMO" point --help | grep -q '"Point to WHAT"' || fail "point --help template"
"$MOLMO" count --help | grep -q '"How many WHAT are there?"' || fail "count --help template"
"$MOLMO" caption --help | grep -q '"Describe this image."' || fail "caption --help template"
"$MOLMO" points --help | grep -q -- "--width" || fail "points --help"

# point --json: the template, the shape, the image size as the user sees it
"$MOLMO" point -m "$Q" -i "$IMG" "the cat" $FAST --json > "$tmp/point.json" || fail "point --json"
python3 - "$tmp/point.json" <<'PY' || fail "point JSON shape"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["prompt"] == "Point to the cat", o["prompt"]
for k in ("points", "count", "stated_count", "count_source", "n_points", "agree", "none",
          "rejected", "n_rejected", "text", "image", "n_tokens", "stop"):
    assert k in o, k
assert isinstance(o["points"], list) and o["n_points"] == len(o["points"])
assert o["image"] == {"width": 451, "height": 300}
assert o["count"] == (o["stated_count"] if o["stated_count"] is not None else o["n_points"])
PY

# text mode prints the same answer the JSON carries (greedy: the same generation)
text=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["text"])' "$tmp/point.json")
"$MOLMO" point -m "$Q" -i "$IMG" "the cat" $FAST --draw "$tmp/out.png" > "$tmp/point.txt" ||
  fail "point text --draw"
n_pts=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["n_points"])' "$tmp/point.json")
if [ "$n_pts" = 0 ]; then
  [ "$(cat "$tmp/point.txt")" = "no points in the answer: $text" ] ||
    fail "point text mode: $(cat "$tmp/point.txt")"
fi

# -p overrides the template; count's template
"$MOLMO" point -m "$Q" -i "$SMALL" -p "Where is the nose?" $FAST --json |
  python3 -c 'import json,sys; assert json.load(sys.stdin)["prompt"] == "Where is the nose?"' ||
  fail "point -p"
"$MOLMO" count -m "$DATA/models/olmoe" -i "$SMALL" "cats" $FAST --json |
  python3 -c 'import json,sys; o = json.load(sys.stdin); assert o["prompt"] == "How many cats are there?", o' ||
  fail "count template"
"$MOLMO" count -m "$DATA/models/olmoe" -i "$IMG" "cats" $FAST --draw "$tmp/out.jpg" |
  grep -q "^count: " || fail "count line / --draw"

# caption: streamed text equals the JSON text (run's format)
cap=$("$MOLMO" caption -m "$DATA/models/olmo" -i "$SMALL" -n 10 --max-crops 1) || fail "caption"
capj=$("$MOLMO" caption -m "$DATA/models/olmo" -i "$SMALL" -n 10 --max-crops 1 --json |
       python3 -c 'import json,sys; o = json.load(sys.stdin); assert len(o["tokens"]) == 10; print(o["text"])') ||
  fail "caption --json"
[ "$cap" = "$capj" ] || fail "caption stream '$cap' != json '$capj'"

# --draw (above) wrote images that decode, at the input's size, PNG and JPEG
for f in out.png out.jpg; do
  "$MOLMO" points -i "$tmp/$f" < /dev/null |
    python3 -c 'import json,sys; assert json.load(sys.stdin)["image"] == {"width": 451, "height": 300}' ||
    fail "--draw $f does not decode to 451x300"
done

# molmo points: exact values from real-looking answers
ans='Counting the <points x1="10.0" y1="20.0" x2="55.5" y2="21.3" alt="cats">cats</points> shows a total of 3.'
printf '%s' "$ans" | "$MOLMO" points --width 451 --height 300 > "$tmp/p.json" || fail "points"
python3 - "$tmp/p.json" <<'PY' || fail "points values"
import json, sys
o = json.load(open(sys.argv[1]))
p = o["points"]
assert len(p) == 2 and o["n_points"] == 2
assert p[0]["x_pct"] == 10.0 and p[0]["y_pct"] == 20.0 and p[0]["label"] == "cats"
assert abs(p[0]["x"] - 45.1) < 1e-9 and abs(p[0]["y"] - 60.0) < 1e-9
assert abs(p[1]["x"] - 55.5 / 100 * 451) < 1e-6 and abs(p[1]["y"] - 21.3 / 100 * 300) < 1e-6
assert p[1]["index"] == 2 and p[1]["source"] == "points" and p[1]["truncated"] is False
assert o["count"] == 3 and o["stated_count"] == 3 and o["agree"] is False
PY
printf 'There are none.' | "$MOLMO" points -W 10 -H 10 |
  python3 -c 'import json,sys; o = json.load(sys.stdin); assert o["none"] and o["count"] == 0 and o["count_source"] == "none", o' ||
  fail "points none"
printf '<point x="150.0" y="2.0">x</point>\xff' | "$MOLMO" points -W 10 -H 10 |
  python3 -c 'import json,sys; o = json.load(sys.stdin); assert o["n_rejected"] == 1 and o["rejected"][0]["reason"] == "range" and o["text"].endswith("\ufffd"), o' ||
  fail "points rejected / invalid UTF-8"
# drawing a point changes the image; no points leaves it as it was
printf '<point x="50.0" y="50.0" alt="cat">cat</point>' |
  "$MOLMO" points -i "$IMG" --draw "$tmp/one.png" > /dev/null || fail "points --draw"
printf 'nothing' | "$MOLMO" points -i "$IMG" --draw "$tmp/none.png" > /dev/null || fail "points --draw none"
cmp -s "$tmp/one.png" "$tmp/none.png" && fail "--draw with a point wrote the same image as without"

# errors: non-zero exit, one line naming the problem
check_err() { # expected-substring, command...
  local want=$1; shift
  local out
  out=$("$@" 2>&1 >/dev/null < /dev/null) && fail "exit 0: $*"
  echo "$out" | grep -q -- "$want" || fail "message for $*: $out"
  [ "$(echo "$out" | wc -l)" -eq 1 ] || fail "not one line: $out"
}
check_err "nope.png" "$MOLMO" point -m "$Q" -i "$tmp/nope.png" "x"
check_err "WHAT or -p" "$MOLMO" point -m "$Q" -i "$IMG"
check_err "-i IMAGE" "$MOLMO" count -m "$Q" "dogs"
check_err "out.bmp" "$MOLMO" point -m "$Q" -i "$SMALL" "x" $FAST --draw "$tmp/out.bmp"
check_err "--quality" "$MOLMO" point -m "$Q" -i "$IMG" "x" --draw "$tmp/q.jpg" --quality 0
check_err "--width" "$MOLMO" points
check_err "--width" "$MOLMO" points -W 0 -H 5
check_err "/nonexistent" "$MOLMO" caption -m /nonexistent -i "$IMG"
# the font error needs a text to draw: a labelled point
out=$(printf '<point x="5" y="5" alt="a">a</point>' |
      "$MOLMO" points -i "$IMG" --draw "$tmp/f.png" --font /nonexistent/font.ttf 2>&1 >/dev/null) &&
  fail "missing font: exit 0"
echo "$out" | grep -q "/nonexistent/font.ttf" || fail "missing font message: $out"
[ ! -e "$tmp/f.png" ] || fail "missing font: an image was written"
echo ok
