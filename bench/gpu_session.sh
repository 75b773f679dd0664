#!/usr/bin/env bash
# Everything a session with a lent GPU machine should check and measure, in one device call (at most
# 9 min: the time limits of its steps add up to 535 s). Run there from the project's root after `. .gl/on-gpu.sh`, with
# the build carried in build-gpu/ (built here with
# cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release && cmake --build build-gpu).
# For validation-layer runs as well, put Debian's vulkan-validationlayers .deb into .gl/ too (prepare.sh
# downloads only the loader; on-gpu.sh unpacks every .deb there) and set VALIDATION=1.
#
# Writes its logs to $OUT (the device tool's output folder) or /tmp/vkllm-gpu; bench/RESULTS.md records
# what they show. Steps are independent: one failing does not stop the others.
set -u
export B=${BUILD:-build-gpu}
O=${OUT:-/tmp/vkllm-gpu}
mkdir -p "$O"
export VKLLM_SHARED=${VKLLM_SHARED:-$PWD/shared}   # stories260K, if a copy was carried
[ "${VALIDATION:-0}" = 1 ] && export VKLLM_VALIDATION=1

step() { # step NAME SECONDS 'SHELL COMMAND': runs it with a time limit, output to $O/NAME.txt
    echo "== $1: $3" >>"$O/steps.txt"
    timeout "$2" bash -c "$3" >"$O/$1.txt" 2>&1
    echo "   exit $?" >>"$O/steps.txt"
}

step devices 10 '$B/vkllm devices'

# Correctness on this device: every kernel test and forward pass (GPU kernels: this is a GPU), batching,
# split decode and the timeline semaphore, and the cooperative-matrix path (the default prompt matmul where the
# device has it and a one-time self-check against the tiled kernel passes; forced here to test it, and the
# forward tests once more with it off to tell f16 rounding from a bug if they fail).
tests() {
    for t in "$B"/tests/test_op_* "$B"/tests/test_forward_* "$B"/tests/test_tensor_parts "$B"/tests/test_batch \
             "$B"/tests/test_decode_async "$B"/tests/test_timeline; do
        echo "-- $t"
        "$t" 2>&1 | tail -3
    done
    echo "-- coopmat"
    VKLLM_COOPMAT=1 "$B"/tests/test_op_matmul_coopmat 2>&1 | tail -5
    echo "-- forward, coopmat off"
    VKLLM_COOPMAT=0 "$B"/tests/test_forward_synth 2>&1 | tail -3
}
export -f tests
step tests 90 tests

step synth 40 '$B/vkllm synth --preset llama3.2-1b --type q4_0 -o /tmp/1b.gguf &&
              $B/vkllm synth --preset llama3-8b --type q4_0 -o /tmp/8b.gguf'

# The targets: tg128 and pp512 for both shapes (issue 5), with the dispatch/barrier/copy counts per token
# (issue 14 item 4: 8B 194 -> 162 dispatches expected).
step bench 75 '$B/vkllm bench -m /tmp/1b.gguf -p 512 -n 128 -r 3 -o md;
               $B/vkllm bench -m /tmp/8b.gguf -p 512 -n 128 -r 3 -o md;
               VKLLM_PROFILE=1 $B/vkllm run -m /tmp/8b.gguf -n 2 -p a 2>&1 | grep -i "per token"'

# Decode attention (issue 14 item 2): split on/off and the old per-row kernel, tg128/tg512 with -c 1024.
attn() {
    for s in 0 1; do echo "-- VKLLM_ATTN_SPLIT=$s"
        VKLLM_ATTN_SPLIT=$s "$B/vkllm" bench -m /tmp/8b.gguf -p 0 -n 128,512 -c 1024 -r 2 -o md; done
    echo "-- old decode kernel"
    VKLLM_ATTN_TILED=0 VKLLM_ATTN_SPLIT=0 "$B/vkllm" bench -m /tmp/8b.gguf -p 0 -n 128,512 -c 1024 -r 2 -o md
}
export -f attn
step attn 45 attn

# Prompt matmul (issue 14 item 5): tiled tiles, cooperative matrices KHR and NV (default tile and 128x128).
prompt() {
    echo "-- default (the self-check's choice)"
    "$B/vkllm" bench -m /tmp/8b.gguf -p 512 -n 0 -r 2 -o md 2>&1 | grep -i -E "self-check|pp512|^\|"
    for t in "" 128x128 64x64; do echo "-- tiled ${t:-default}"
        VKLLM_COOPMAT=0 VKLLM_MATMUL_TILE=$t "$B/vkllm" bench -m /tmp/8b.gguf -p 512 -n 0 -r 2 -o md; done
    for f in khr nv; do for t in "" 128x128; do echo "-- coopmat $f ${t:-default}"
        VKLLM_COOPMAT=$f VKLLM_COOPMAT_TILE=$t "$B/vkllm" bench -m /tmp/8b.gguf -p 512 -n 0 -r 2 -o md; done; done
}
export -f prompt
step prompt 45 prompt

# Batched decode (issue 12 item 2): aggregate and per-sequence tok/s with 1..16 sequences.
step parallel 40 '$B/vkllm bench -m /tmp/1b.gguf -p 0 -n 32 -r 2 --parallel 1,4,8,16 -o md;
                  $B/vkllm bench -m /tmp/8b.gguf -p 0 -n 32 -r 2 --parallel 1,4,8,16 -o md'

# The other families' shapes (host/model/arch.h): Qwen3 (Q/K norms, NeoX) and Gemma 3 (sliding window, GeGLU fused,
# post-norms, 262k-token tied output).
step bench_families 30 '$B/vkllm bench --synth qwen3-0.6b -p 512 -n 128 -r 2 -o md;
                        $B/vkllm bench --synth gemma3-1b -p 512 -n 128 -r 2 -o md'
# Matvec GB/s per weight type (issues 10 and 14 item 1: q4_0 should reach q8_0's).
step kernels 35 '$B/vkllm bench --kernels'

# The K-quants (issue 10): the 1B shape as Q4_K_M (llama-quantize's mix, from an f16 synth; synth's own q4_K
# file if quantize does not finish) and Q6_K, tg128 and pp512 (the 1B Q4_0 numbers above are the baseline).
step synth_k 40 '$B/vkllm synth --preset llama3.2-1b --type q6_K -o /tmp/1b-q6_K.gguf;
                $B/vkllm synth --preset llama3.2-1b --type f16 -o /tmp/1b-f16.gguf &&
                timeout 25 $B/vkllm quantize /tmp/1b-f16.gguf /tmp/1b-q4_K_M.gguf Q4_K_M ||
                $B/vkllm synth --preset llama3.2-1b --type q4_K -o /tmp/1b-q4_K_M.gguf; rm -f /tmp/1b-f16.gguf'
step bench_k 30 '$B/vkllm info /tmp/1b-q4_K_M.gguf | grep "file type";
                $B/vkllm bench -m /tmp/1b-q4_K_M.gguf -p 512 -n 128 -r 2 -o md;
                $B/vkllm bench -m /tmp/1b-q6_K.gguf -p 512 -n 128 -r 2 -o md'

# Matvec workgroup shapes (rows per workgroup x workgroup size) on the 8B model's decode.
sweep() {
    for s in 2x64 4x64 4x128 8x128 8x256; do
        echo "-- VKLLM_MATVEC=$s"
        VKLLM_MATVEC=$s "$B/vkllm" bench -m /tmp/8b.gguf -p 0 -n 64 -r 1 -o csv | tail -1
    done
}
export -f sweep
step matvec_sweep 30 sweep

# A decode step split into layer groups within a frame budget (issue 13 item 4): half a token, and no split.
step frame 15 '$B/tests/embed/frame_loop /tmp/1b.gguf 50% 10 32; $B/tests/embed/frame_loop /tmp/1b.gguf 1000000 10 32'

# Where a token's GPU time goes, per op.
step profile 10 'VKLLM_PROFILE=1 $B/vkllm run -m /tmp/8b.gguf -n 4 -p a'
cat "$O/steps.txt"
