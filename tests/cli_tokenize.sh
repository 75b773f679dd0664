#!/bin/bash
# `vkllm tokenize` from the shell: ids of known test vectors (Llama 3, GPT-2 and Llama 2 vocab-only files,
# and a synthetic full model), --no-bos, --special, --pieces, -f; on errors exit status 1 and exactly one
# line on stderr, "vkllm tokenize: <message>". Exits 77 (skipped) when the shared vocab files are missing.
set -u
BIN=${VKLLM_BIN:?VKLLM_BIN must point at the vkllm binary}
SHARED=${VKLLM_SHARED:-../shared}
TMP=$(mktemp -d "${VKLLM_TEST_TMP:-/tmp}/cli_tokenize.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# expect_out NAME EXPECTED CMD...: exit 0, nothing on stderr, stdout exactly EXPECTED (one line)
expect_out() {
    local name=$1 want=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    [ $rc -eq 0 ] || fail "$name: exit status $rc, expected 0 (stderr: $(head -c 300 "$TMP/err"))"
    [ ! -s "$TMP/err" ] || fail "$name: unexpected stderr: $(head -c 300 "$TMP/err")"
    printf '%s\n' "$want" >"$TMP/want"
    cmp -s "$TMP/out" "$TMP/want" || fail "$name: expected '$want', got '$(head -c 500 "$TMP/out")'"
}

# expect_error NAME PATTERN CMD...: exit 1, one stderr line "vkllm tokenize: ..." matching PATTERN (grep -E)
expect_error() {
    local name=$1 pattern=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    [ $rc -eq 1 ] || fail "$name: exit status $rc, expected 1"
    local lines
    lines=$(wc -l <"$TMP/err")
    [ "$lines" -eq 1 ] || fail "$name: $lines lines on stderr, expected 1: $(head -c 500 "$TMP/err")"
    grep -qE "^vkllm tokenize: " "$TMP/err" || fail "$name: stderr does not start with 'vkllm tokenize: ': $(cat "$TMP/err")"
    grep -qE -- "$pattern" "$TMP/err" || fail "$name: stderr does not match '$pattern': $(cat "$TMP/err")"
}

# --- needs no shared data: a synthetic full model (tensors and all; only its metadata is read) ---
if "$BIN" synth --preset tiny --type f32 -o "$TMP/tiny.gguf" --seed 3 >/dev/null 2>"$TMP/err"; then
    "$BIN" tokenize -m "$TMP/tiny.gguf" -p "Hello world" >"$TMP/out" 2>"$TMP/err" ||
        fail "tokenize on a full model: $(cat "$TMP/err")"
    grep -qE '^1( [0-9]+)+$' "$TMP/out" || fail "tokenize on a full model: unexpected output '$(cat "$TMP/out")'"
else
    fail "synth tiny: $(cat "$TMP/err")"
fi
"$BIN" tokenize --help >"$TMP/out" 2>"$TMP/err" || fail "--help: exit status $?"
grep -q "^usage: vkllm tokenize" "$TMP/out" || fail "--help prints no usage"

# --- errors ---
printf 'not a gguf file\n' >"$TMP/text.txt"
expect_error "no model" "no model" "$BIN" tokenize -p "x"
expect_error "no text" "exactly one of -p" "$BIN" tokenize -m "$TMP/tiny.gguf"
expect_error "both -p and -f" "exactly one of -p" "$BIN" tokenize -m "$TMP/tiny.gguf" -p x -f "$TMP/text.txt"
expect_error "-m without value" "needs a value" "$BIN" tokenize -p x -m
expect_error "unknown option" "unknown option '--frobnicate'" "$BIN" tokenize -m "$TMP/tiny.gguf" -p x --frobnicate
expect_error "missing model file" "no/such/model.gguf" "$BIN" tokenize -m "$TMP/no/such/model.gguf" -p x
expect_error "not a GGUF" "text.txt" "$BIN" tokenize -m "$TMP/text.txt" -p x
expect_error "missing text file" "cannot open" "$BIN" tokenize -m "$TMP/tiny.gguf" -f "$TMP/no-such-file.txt"
head -c 1000 "$TMP/tiny.gguf" >"$TMP/truncated.gguf"
expect_error "truncated GGUF" "truncated.gguf" "$BIN" tokenize -m "$TMP/truncated.gguf" -p x

# --- vocab-only files and known vectors ---
L3=$SHARED/vocab/llama3-vocab.gguf
G2=$SHARED/vocab/ggml-vocab-gpt-2.gguf
SPM=$SHARED/vocab/ggml-vocab-llama-spm.gguf
if [ ! -f "$L3" ] || [ ! -f "$G2" ] || [ ! -f "$SPM" ]; then
    echo "skipped: shared vocab files not found under $SHARED/vocab" >&2
    [ $failures -eq 0 ] || { echo "cli_tokenize: $failures failure(s)" >&2; exit 1; }
    exit 77
fi

expect_out "llama3 with BOS" "128000 9906 1917" "$BIN" tokenize -m "$L3" -p "Hello world"
expect_out "llama3 --no-bos" "9906 1917" "$BIN" tokenize -m "$L3" -p "Hello world" --no-bos
expect_out "llama3 vector" "9906 11 379 65948 0 2650 527 499 27623 223 949 37046 101067 19000 23182 102301 9263 18136 16 36827 21909" \
    "$BIN" tokenize -m "$L3" --no-bos -p "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～"
expect_out "llama3 empty" "128000" "$BIN" tokenize -m "$L3" -p ""
expect_out "llama3 empty --no-bos" "" "$BIN" tokenize -m "$L3" -p "" --no-bos
expect_out "llama3 --special" "128000 128006 882 128007 271 13347 128009" \
    "$BIN" tokenize -m "$L3" --no-bos --special -p "<|begin_of_text|><|start_header_id|>user<|end_header_id|>

Hi<|eot_id|>"
"$BIN" tokenize -m "$L3" --no-bos -p "Hi<|eot_id|>" >"$TMP/out" 2>"$TMP/err" || fail "llama3 without --special: $(cat "$TMP/err")"
grep -qE '(^| )128009( |$)' "$TMP/out" && fail "<|eot_id|> matched without --special: $(cat "$TMP/out")"
expect_out "llama3 --pieces" "128000:<|begin_of_text|> 9906:Hello 1917: world" "$BIN" tokenize -m "$L3" -p "Hello world" --pieces
expect_out "llama3 --pieces escapes" '64:a 198:\n 65:b 1470:\tc' "$BIN" tokenize -m "$L3" --no-bos --pieces -p "a
b	c"
expect_out "llama3 --pieces partial UTF-8" '27623: \xF0\x9F\x98 223:\x81' "$BIN" tokenize -m "$L3" --no-bos --pieces -p " 😁"
printf '    Hello\n    Hello' >"$TMP/hello.txt"
expect_out "llama3 -f" "128000 262 22691 198 262 22691" "$BIN" tokenize -m "$L3" -f "$TMP/hello.txt"

expect_out "gpt-2" "15496 995" "$BIN" tokenize -m "$G2" -p "Hello world"
expect_out "gpt-2 --special" "15496 50256" "$BIN" tokenize -m "$G2" -p "Hello<|endoftext|>" --special
expect_out "llama spm" "1 15043 3186" "$BIN" tokenize -m "$SPM" -p "Hello world"
expect_out "llama spm --pieces" "1:<s> 15043: Hello 3186: world" "$BIN" tokenize -m "$SPM" -p "Hello world" --pieces

if [ $failures -ne 0 ]; then
    echo "cli_tokenize: $failures failure(s)" >&2
    exit 1
fi
echo "cli_tokenize: all checks passed"
