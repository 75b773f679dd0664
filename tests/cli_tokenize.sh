#!/bin/bash
# `vkllm tokenize` from the shell: ids of known test vectors (Llama 3, GPT-2 and Llama 2 vocab-only files,
# and a synthetic full model), --no-bos, --special, --pieces, -f; on errors exit status 1 and exactly one
# line on stderr, "vkllm tokenize: <message>". Exits 77 (skipped) when the shared vocab files are missing.
. "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh"
cli_init cli_tokenize
CLI_ERROR_PREFIX="vkllm tokenize: "

# --- needs no shared data: a synthetic full model (tensors and all; only its metadata is read) ---
if expect_ok "$BIN" synth --preset tiny --type f32 -o "$TMP/tiny.gguf" --seed 3; then
    expect_ok "$BIN" tokenize -m "$TMP/tiny.gguf" -p "Hello world"
    grep -qE '^1( [0-9]+)+$' "$TMP/out" || fail "tokenize on a full model: unexpected output '$(cat "$TMP/out")'"
fi
expect_ok "$BIN" tokenize --help
grep -q "^usage: vkllm tokenize" "$TMP/out" || fail "--help prints no usage"

# --- errors ---
printf 'not a gguf file\n' >"$TMP/text.txt"
expect_error "no model" "$BIN" tokenize -p "x"
expect_error "exactly one of -p" "$BIN" tokenize -m "$TMP/tiny.gguf"
expect_error "exactly one of -p" "$BIN" tokenize -m "$TMP/tiny.gguf" -p x -f "$TMP/text.txt"
expect_error "needs a value" "$BIN" tokenize -p x -m
expect_error "unknown option '--frobnicate'" "$BIN" tokenize -m "$TMP/tiny.gguf" -p x --frobnicate
expect_error "no/such/model.gguf" "$BIN" tokenize -m "$TMP/no/such/model.gguf" -p x
expect_error "text.txt" "$BIN" tokenize -m "$TMP/text.txt" -p x
expect_error "cannot open" "$BIN" tokenize -m "$TMP/tiny.gguf" -f "$TMP/no-such-file.txt"
head -c 1000 "$TMP/tiny.gguf" >"$TMP/truncated.gguf"
expect_error "truncated.gguf" "$BIN" tokenize -m "$TMP/truncated.gguf" -p x

# --- vocab-only files and known vectors ---
L3=$SHARED/vocab/llama3-vocab.gguf
G2=$SHARED/vocab/ggml-vocab-gpt-2.gguf
SPM=$SHARED/vocab/ggml-vocab-llama-spm.gguf
if [ ! -f "$L3" ] || [ ! -f "$G2" ] || [ ! -f "$SPM" ]; then
    cli_skip "shared vocab files not found under $SHARED/vocab"
fi

expect_stdout "llama3 with BOS" "128000 9906 1917" "$BIN" tokenize -m "$L3" -p "Hello world"
expect_stdout "llama3 --no-bos" "9906 1917" "$BIN" tokenize -m "$L3" -p "Hello world" --no-bos
expect_stdout "llama3 vector" "9906 11 379 65948 0 2650 527 499 27623 223 949 37046 101067 19000 23182 102301 9263 18136 16 36827 21909" \
    "$BIN" tokenize -m "$L3" --no-bos -p "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～"
expect_stdout "llama3 empty" "128000" "$BIN" tokenize -m "$L3" -p ""
expect_stdout "llama3 empty --no-bos" "" "$BIN" tokenize -m "$L3" -p "" --no-bos
expect_stdout "llama3 --special" "128000 128006 882 128007 271 13347 128009" \
    "$BIN" tokenize -m "$L3" --no-bos --special -p "<|begin_of_text|><|start_header_id|>user<|end_header_id|>

Hi<|eot_id|>"
if expect_ok "$BIN" tokenize -m "$L3" --no-bos -p "Hi<|eot_id|>"; then
    grep -qE '(^| )128009( |$)' "$TMP/out" && fail "<|eot_id|> matched without --special: $(cat "$TMP/out")"
fi
expect_stdout "llama3 --pieces" "128000:<|begin_of_text|> 9906:Hello 1917: world" "$BIN" tokenize -m "$L3" -p "Hello world" --pieces
expect_stdout "llama3 --pieces escapes" '64:a 198:\n 65:b 1470:\tc' "$BIN" tokenize -m "$L3" --no-bos --pieces -p "a
b	c"
expect_stdout "llama3 --pieces partial UTF-8" '27623: \xF0\x9F\x98 223:\x81' "$BIN" tokenize -m "$L3" --no-bos --pieces -p " 😁"
printf '    Hello\n    Hello' >"$TMP/hello.txt"
expect_stdout "llama3 -f" "128000 262 22691 198 262 22691" "$BIN" tokenize -m "$L3" -f "$TMP/hello.txt"

expect_stdout "gpt-2" "15496 995" "$BIN" tokenize -m "$G2" -p "Hello world"
expect_stdout "gpt-2 --special" "15496 50256" "$BIN" tokenize -m "$G2" -p "Hello<|endoftext|>" --special
expect_stdout "llama spm" "1 15043 3186" "$BIN" tokenize -m "$SPM" -p "Hello world"
expect_stdout "llama spm --pieces" "1:<s> 15043: Hello 3186: world" "$BIN" tokenize -m "$SPM" -p "Hello world" --pieces

cli_finish
