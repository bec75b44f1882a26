#!/usr/bin/env bash
# tokenize.sh — `molmo tokenize` through the real binary: text and JSON output, stdin read
# verbatim (trailing newline and NUL bytes kept), --decode (with and without special tokens),
# --prompt (the golden's text ids), and the exit codes of bad calls.
# usage: bash tokenize.sh <molmo binary> <tests/data>
set -u
MOLMO=$1
DATA=$2
QWEN=$DATA/tokenizers/qwen2-molmo
fails=0

check() { # name, expected, actual
    if [ "$2" != "$3" ]; then
        echo "FAIL $1"
        echo "  want: $2"
        echo "  got:  $3"
        fails=$((fails + 1))
    else
        echo "ok   $1"
    fi
}

# ids and token strings; the expected ids are those of the Hugging Face reference (cases.jsonl)
out=$("$MOLMO" tokenize -m "$QWEN" "Hello world")
check "text output" $'    9707  "Hello"\n    1879  "Ġworld"\n2 tokens' "$out"
out=$("$MOLMO" tokenize -m "$QWEN" --json "Hello world")
check "json output" '{"ids":[9707,1879],"tokens":["Hello","Ġworld"]}' "$out"

# stdin is read verbatim: the trailing newline and a NUL byte are tokens too
out=$(printf 'Hello world\n' | "$MOLMO" tokenize -m "$QWEN" --json -)
check "stdin keeps the newline" '{"ids":[9707,1879,198],"tokens":["Hello","Ġworld","Ċ"]}' "$out"
out=$(printf 'NUL\0byte' | "$MOLMO" tokenize -m "$QWEN" --json - | sed 's/,"tokens".*//')
check "stdin keeps NUL bytes" '{"ids":[45,1094,188,3782]' "$out"

# a tokenizer.json file works as PATH too, and the model directories of the fixtures
out=$("$MOLMO" tokenize -m "$QWEN/tokenizer.json" --json "Hello world" | sed 's/,"tokens".*//')
check "tokenizer.json as PATH" '{"ids":[9707,1879]' "$out"

# --prompt: the text part of a Molmo prompt, as in golden/qwen2/tiny_50x30.json
out=$("$MOLMO" tokenize -m "$DATA/models/qwen2" --prompt --json "Describe this image." |
    sed 's/,"tokens".*//')
check "prompt ids" '{"ids":[547,799,25,422,288,740,65,68,419,732,424,13,362,778,380,517,25]' "$out"

# --decode, with and without special tokens
out=$("$MOLMO" tokenize -m "$QWEN" --decode "[9707, 151643, 1879]")
check "decode" 'Hello<|endoftext|> world' "$out"
out=$("$MOLMO" tokenize -m "$QWEN" --decode --skip-special --json "9707 151643 1879")
check "decode skipping special tokens" '{"text":"Hello world"}' "$out"
out=$(echo "15496 764" | "$MOLMO" tokenize -m "$DATA/tokenizers/gpt2" --decode -)
check "decode from stdin" 'Hello.' "$out"

# bad calls: usage errors exit 2, runtime errors exit 1 with a message
"$MOLMO" tokenize "x" >/dev/null 2>&1
check "missing -m exits 2" 2 $?
err=$("$MOLMO" tokenize -m "$DATA/images" "x" 2>&1 >/dev/null)
check "no tokenizer.json exits 1" 1 $?
case $err in *"no tokenizer.json"*) echo "ok   message names the problem" ;;
    *) echo "FAIL message: $err"; fails=$((fails + 1)) ;; esac
"$MOLMO" tokenize -m "$QWEN" --decode "12 abc" >/dev/null 2>&1
check "bad ids exit 1" 1 $?

if [ $fails -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all tokenize checks passed"
