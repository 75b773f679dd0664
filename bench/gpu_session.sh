#!/usr/bin/env bash
# Everything a session with a lent GPU machine should check and measure, in one device call (at most
# 9 min: the time limits of its steps). Run there from the project's root after `. .gl/on-gpu.sh`, with
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

step devices 15 '$B/vkllm devices'

# Correctness on this device: every kernel test and forward pass (GPU kernels: this is a GPU), and the
# cooperative-matrix path, which only runs where the device has it and is opt-in until validated.
tests() {
    for t in "$B"/tests/test_op_* "$B"/tests/test_forward_* "$B"/tests/test_tensor_parts; do
        echo "-- $t"
        "$t" 2>&1 | tail -3
    done
    echo "-- coopmat"
    VKLLM_COOPMAT=1 "$B"/tests/test_op_matmul_coopmat 2>&1 | tail -5
}
export -f tests
step tests 120 tests

step synth 45 '$B/vkllm synth --preset llama3.2-1b --type q4_0 -o /tmp/1b.gguf &&
              $B/vkllm synth --preset llama3-8b --type q4_0 -o /tmp/8b.gguf'

# The targets: tg128 and pp512 for both shapes, tiled and cooperative-matrix prompt matmul.
step bench 105 '$B/vkllm bench -m /tmp/1b.gguf -p 512 -n 128 -r 5 -o md;
               $B/vkllm bench -m /tmp/8b.gguf -p 512 -n 128 -r 5 -o md;
               VKLLM_COOPMAT=1 $B/vkllm bench -m /tmp/1b.gguf -p 512 -n 0 -r 5 -o md;
               VKLLM_COOPMAT=1 $B/vkllm bench -m /tmp/8b.gguf -p 512 -n 0 -r 5 -o md'
# The other families' shapes (host/arch.h): Qwen3 (Q/K norms, NeoX) and Gemma 3 (sliding window, GeGLU,
# post-norms, 262k-token tied output).
step bench_families 50 '$B/vkllm bench --synth qwen3-0.6b -p 512 -n 128 -r 3 -o md;
                        $B/vkllm bench --synth gemma3-1b -p 512 -n 128 -r 3 -o md'
step kernels 40 '$B/vkllm bench --kernels'

# The K-quants (issue 10): the 1B shape as Q4_K_M (llama-quantize's mix, from an f16 synth; synth's own q4_K
# file if quantize does not finish) and Q6_K, tg128 and pp512 (the 1B Q4_0 numbers above are the baseline).
step synth_k 55 '$B/vkllm synth --preset llama3.2-1b --type q6_K -o /tmp/1b-q6_K.gguf;
                $B/vkllm synth --preset llama3.2-1b --type f16 -o /tmp/1b-f16.gguf &&
                timeout 30 $B/vkllm quantize /tmp/1b-f16.gguf /tmp/1b-q4_K_M.gguf Q4_K_M ||
                $B/vkllm synth --preset llama3.2-1b --type q4_K -o /tmp/1b-q4_K_M.gguf; rm -f /tmp/1b-f16.gguf'
step bench_k 45 '$B/vkllm info /tmp/1b-q4_K_M.gguf | grep "file type";
                $B/vkllm bench -m /tmp/1b-q4_K_M.gguf -p 512 -n 128 -r 3 -o md;
                $B/vkllm bench -m /tmp/1b-q6_K.gguf -p 512 -n 128 -r 3 -o md'

# Matvec workgroup shapes (rows per workgroup x workgroup size) on the 8B model's decode.
sweep() {
    for s in 1x32 2x64 4x64 4x128 8x128 8x256 16x256; do
        echo "-- VKLLM_MATVEC=$s"
        VKLLM_MATVEC=$s "$B/vkllm" bench -m /tmp/8b.gguf -p 0 -n 128 -r 2 -o csv | tail -1
    done
}
export -f sweep
step matvec_sweep 50 sweep

# Where a token's GPU time goes, per op.
step profile 15 'VKLLM_PROFILE=1 $B/vkllm run -m /tmp/8b.gguf -n 4 -p a'
cat "$O/steps.txt"
