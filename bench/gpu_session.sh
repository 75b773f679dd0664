#!/usr/bin/env bash
# Everything a session with a lent GPU machine (../shared/gpu/README.md: an H100, Ubuntu 24.04, no Vulkan
# loader) should check and measure, in one device call: the steps' time limits add up to under 9 minutes
# (the script prints the sum), so the call fits the tool's 10 with the start-up.
#
# 1. Here, from the project's root (the build is carried, not made there; a Release build is ~400 MiB and
#    the tool carries 64 MiB, so `pack` takes the binaries below, the libraries vkllm links beyond glibc and
#    stories260K, compressed to ~5 MiB, into build-gpu/):
#        ../shared/gpu/prepare.sh        (in a main checkout: in a git worktree it stops at .git/info/exclude)
#        cmake -S . -B build-gpu-full -DCMAKE_BUILD_TYPE=Release && cmake --build build-gpu-full -j2
#        bench/gpu_session.sh pack build-gpu-full build-gpu
# 2. One device call: run with command '. .gl/on-gpu.sh; bench/gpu_session.sh', carry [".gl", "build-gpu"],
#    timeout_s 600.
# 3. $OUT (the tool's output folder; /tmp/vkllm-gpu elsewhere) brings back session.log (every step's command
#    and output) and steps.txt (each step's exit status and seconds; also printed at the end). Record what
#    they show in bench/RESULTS.md.
# For validation-layer runs as well, put Debian's vulkan-validationlayers .deb into .gl/ too (prepare.sh
# downloads only the loader; on-gpu.sh unpacks every .deb there) and set VALIDATION=1.
#
# Steps are independent: one failing does not stop the others; a step fails if any command in it fails
# (pipelines included), and the script's exit status is the number of failed steps.
# GPU_SESSION_DRY=1 is the rehearsal (tests/cli_gpu_session.sh runs it in ctest on lavapipe): the same
# steps and commands on tiny models, few tokens and repetitions, with the kernels chosen as for a GPU
# (VKLLM_DEBUG_AS_GPU=1), a small read-bandwidth buffer, and each step limited to DRY_LIMIT seconds; of the
# test programs it runs those matching $DRY_TESTS and only checks that the others exist.
set -u

# The test programs the tests step runs, in BUILD/tests (pack takes exactly these).
TEST_PROGRAMS='test_op_* test_forward_* test_tensor_parts test_batch test_decode_async test_timeline'

if [ "${1:-}" = pack ]; then # pack BUILD DEST: DEST/build.tar.xz holds what a session needs from BUILD
    src=${2:?usage: bench/gpu_session.sh pack BUILD DEST} dest=${3:?usage: bench/gpu_session.sh pack BUILD DEST}
    mkdir -p "$dest" || exit 1
    [ -z "$(ls -A "$dest" | grep -vx build.tar.xz)" ] || { echo "pack: $dest holds other files (all of it is carried)" >&2; exit 1; }
    stage=$(mktemp -d) || exit 1
    trap 'rm -rf "$stage"' EXIT
    mkdir -p "$stage/tests/embed" "$stage/lib" "$stage/shared/models" || exit 1
    bins=("$src/vkllm" "$src/tests/embed/frame_loop")
    for p in $TEST_PROGRAMS; do bins+=("$src"/tests/$p); done
    for b in "${bins[@]}"; do
        [ -x "$b" ] || { echo "pack: $b is missing (build $src first)" >&2; exit 1; }
        ln -s "$(realpath "$b")" "$stage/${b#"$src"/}"
    done
    # Every shared library they link but glibc's and the Vulkan loader's (the device's own and .gl's).
    ! ldd "${bins[@]}" | grep "not found" || exit 1
    ldd "${bins[@]}" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u |
        grep -v -E '^(libc|libm|libdl|libpthread|librt|libvulkan)\.so' |
        while read -r name path; do ln -sf "$(realpath "$path")" "$stage/lib/$name"; done
    ln -s "$(realpath "${VKLLM_SHARED:-../shared}/models/stories260K.gguf")" "$stage/shared/models/" || exit 1
    # One xz stream with a dictionary wider than a test program: the SPIR-V every program embeds is stored once.
    tar -C "$stage" -chf - . | xz -T1 --lzma2=preset=1,dict=64MiB >"$dest/build.tar.xz" || exit 1
    size=$(du -m "$dest/build.tar.xz" | cut -f1)
    echo "pack: $dest/build.tar.xz, $size MiB (with .gl, at most 64 MiB travel)"
    [ "$size" -le 56 ]
    exit
fi

export B
B=$(realpath -m "${BUILD:-build-gpu}")
O=${OUT:-/tmp/vkllm-gpu}
mkdir -p "$O" || exit 1
LOG=$O/session.log
: >"$LOG"
: >"$O/steps.txt"
[ "${VALIDATION:-0}" = 1 ] && export VKLLM_VALIDATION=1

# What pack made: unpacked beside it, its libraries first, its stories260K for the tests.
if [ -f "$B/build.tar.xz" ]; then
    # tar and xz where they are; else python3 (the GPU machine's README lists python3, not xz)
    if command -v xz >/dev/null; then
        xz -dc "$B/build.tar.xz" | tar -C "$B" -xf -
    else
        python3 -W ignore::DeprecationWarning -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
            "$B/build.tar.xz" "$B"
    fi >>"$LOG" 2>&1 || echo "unpacking $B/build.tar.xz failed" >>"$LOG"
fi
[ -d "$B/lib" ] && export LD_LIBRARY_PATH=$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[ -d "$B/shared" ] && export VKLLM_SHARED=$B/shared

# The sizes: the real ones, or the rehearsal's (GPU_SESSION_DRY=1). Models go to $MODELS (not $OUT: the
# tool brings back what is there).
set -a
if [ "${GPU_SESSION_DRY:-0}" = 1 ]; then
    # a 16 MiB read-bandwidth buffer (else 128 MiB on lavapipe: 3/4 of each bench's time)
    DRY_LIMIT=${DRY_LIMIT:-120} VKLLM_DEBUG_AS_GPU=1 VKLLM_DEBUG_MAX_ALLOCATION=16777216
    DRY_TESTS=${DRY_TESTS:-'^test_(op_rmsnorm|op_to_f16|op_rope_kv_store|op_matmul_coopmat|forward_stories|timeline)$'}
    M1=tiny256 M8=tiny QWEN=qwen3-tiny GEMMA=gemma3-tiny
    PP=16 TG=4 TG_LONG=8 CTX=32 R=1 R2=1 PAR_N=4 PAR=1,4 SWEEP_N=4 PROFILE_N=2 FRAME_S=1 FRAME_N=4
    KERNELS="--quick --types q4_0,q8_0 --shapes 256x256 -r 1"
else
    DRY_LIMIT= DRY_TESTS=
    M1=llama3.2-1b M8=llama3-8b QWEN=qwen3-0.6b GEMMA=gemma3-1b
    PP=512 TG=128 TG_LONG=512 CTX=1024 R=3 R2=2 PAR_N=32 PAR=1,4,8,16 SWEEP_N=64 PROFILE_N=4 FRAME_S=10 FRAME_N=32
    KERNELS=
fi
MODELS=$(mktemp -d "${TMPDIR:-/tmp}/vkllm-gpu-models.XXXXXX") || exit 1
set +a
trap 'rm -rf "$MODELS"' EXIT

limits=0 failed=0
step() { # step NAME SECONDS 'SHELL COMMAND': runs it under the time limit (a rehearsal's: DRY_LIMIT), output to session.log
    local limit=${DRY_LIMIT:-$2} start=$SECONDS rc note=
    limits=$((limits + $2))
    printf '\n%s\n' "$3" | sed -e "2s/^/==== $1: /" -e '3,$s/^ */====   /' >>"$LOG"   # each line marked
    # Any failing command fails the step (which still runs to its end): ERR fires for pipelines too.
    timeout -k 5 "$limit" bash -o pipefail -c "set -E; fail=0; trap 'fail=1' ERR
$3
exit \$fail" >>"$LOG" 2>&1
    rc=$?
    { [ $rc = 124 ] || [ $rc = 137 ]; } && note=" (timed out)"
    [ $rc = 0 ] || failed=$((failed + 1))
    printf '==== %s: exit %d%s after %d s\n' "$1" $rc "$note" $((SECONDS - start)) >>"$LOG"
    printf '%-15s exit %3d%-12s %4d s of %d\n' "$1" $rc "$note" $((SECONDS - start)) "$limit" >>"$O/steps.txt"
}

step devices 10 '$B/vkllm devices'

# Correctness on this device: every kernel test and forward pass (GPU kernels: this is a GPU), batching,
# split decode and the timeline semaphore, and the cooperative-matrix path (the default prompt matmul where the
# device has it and a one-time self-check against the tiled kernel passes; forced here to test it, and the
# forward tests once more with it off to tell f16 rounding from a bug if they fail).
run_test() { # run_test [VAR=VALUE...] PROGRAM: its last lines, exit status (77: skipped, reported, not failed)
    local t=${!#} rc=0
    echo "-- $*"
    [ -x "$t" ] || { echo "   missing"; return 1; }
    if [ -n "$DRY_TESTS" ] && ! [[ ${t##*/} =~ $DRY_TESTS ]]; then echo "   not run (rehearsal)"; return 0; fi
    env "$@" >"$MODELS/test.out" 2>&1 || rc=$?
    tail -n $([ $rc = 0 ] && echo 3 || echo 20) "$MODELS/test.out"   # more of a failure
    echo "   exit $rc"
    [ $rc = 0 ] || [ $rc = 77 ]
}
tests() {
    for p in $TEST_PROGRAMS; do for t in "$B"/tests/$p; do run_test "$t"; done; done
    run_test VKLLM_COOPMAT=1 "$B"/tests/test_op_matmul_coopmat
    run_test VKLLM_COOPMAT=0 "$B"/tests/test_forward_synth
}
export -f run_test tests
export TEST_PROGRAMS
step tests 90 tests

step synth 40 '$B/vkllm synth --preset $M1 --type q4_0 -o $MODELS/1b.gguf
              $B/vkllm synth --preset $M8 --type q4_0 -o $MODELS/8b.gguf'

# The targets: tg128 and pp512 for both shapes (issue 5), with the dispatch/barrier/copy counts per token
# (issue 14 item 4: 8B 194 -> 162 dispatches expected).
step bench 75 '$B/vkllm bench -m $MODELS/1b.gguf -p $PP -n $TG -r $R -o md
               $B/vkllm bench -m $MODELS/8b.gguf -p $PP -n $TG -r $R -o md
               VKLLM_PROFILE=1 $B/vkllm run -m $MODELS/8b.gguf -n 2 -p a 2>&1 | grep -i "per token"'

# Decode attention (issue 14 item 2): split on/off and the old per-row kernel, tg128/tg512 with -c 1024.
attn() {
    for s in 0 1; do echo "-- VKLLM_ATTN_SPLIT=$s"
        VKLLM_ATTN_SPLIT=$s "$B/vkllm" bench -m $MODELS/8b.gguf -p 0 -n $TG,$TG_LONG -c $CTX -r $R2 -o md; done
    echo "-- old decode kernel"
    VKLLM_ATTN_TILED=0 VKLLM_ATTN_SPLIT=0 "$B/vkllm" bench -m $MODELS/8b.gguf -p 0 -n $TG,$TG_LONG -c $CTX -r $R2 -o md
}
export -f attn
step attn 45 attn

# Prompt matmul (issue 14 item 5): tiled tiles, cooperative matrices KHR and NV (default tile and 128x128).
# The default run's stderr has the self-check's verdict where the device has cooperative matrices. A forced
# extension the driver lacks leaves the tiled kernel: the devices step's "cooperative matrix KHR .., NV .."
# line says which rows ran cooperative matrices.
prompt() {
    echo "-- default (the self-check's choice)"
    "$B/vkllm" bench -m $MODELS/8b.gguf -p $PP -n 0 -r $R2 -o md 2>&1 | grep -i -E "self-check|pp$PP|^\|"
    for t in "" 128x128 64x64; do echo "-- tiled ${t:-default}"
        VKLLM_COOPMAT=0 VKLLM_MATMUL_TILE=$t "$B/vkllm" bench -m $MODELS/8b.gguf -p $PP -n 0 -r $R2 -o md; done
    for f in khr nv; do for t in "" 128x128; do echo "-- coopmat $f ${t:-default}"
        VKLLM_COOPMAT=$f VKLLM_COOPMAT_TILE=$t "$B/vkllm" bench -m $MODELS/8b.gguf -p $PP -n 0 -r $R2 -o md; done; done
}
export -f prompt
step prompt 45 prompt

# Batched decode (issue 12 item 2): aggregate and per-sequence tok/s with 1..16 sequences.
step parallel 40 '$B/vkllm bench -m $MODELS/1b.gguf -p 0 -n $PAR_N -r $R2 --parallel $PAR -o md
                  $B/vkllm bench -m $MODELS/8b.gguf -p 0 -n $PAR_N -r $R2 --parallel $PAR -o md'

# The other families' shapes (host/model/arch.h): Qwen3 (Q/K norms, NeoX) and Gemma 3 (sliding window, GeGLU fused,
# post-norms, 262k-token tied output).
step bench_families 30 'TMPDIR=$MODELS $B/vkllm bench --synth $QWEN -p $PP -n $TG -r $R2 -o md
                        TMPDIR=$MODELS $B/vkllm bench --synth $GEMMA -p $PP -n $TG -r $R2 -o md'
# Matvec GB/s per weight type (issues 10 and 14 item 1: q4_0 should reach q8_0's).
step kernels 35 '$B/vkllm bench --kernels $KERNELS'

# The K-quants (issue 10): the 1B shape as Q4_K_M (llama-quantize's mix, from an f16 synth; 1B takes ~330 s of
# CPU, so synth's own q4_K file if it does not finish in 25 s on the 16 cores) and Q6_K, tg128 and pp512 (the 1B
# Q4_0 numbers above are the baseline). The synths run beside the quantize: one after the other they overran.
step synth_k 40 '$B/vkllm synth --preset $M1 --type q6_K -o $MODELS/1b-q6_K.gguf & q6=$!
                $B/vkllm synth --preset $M1 --type q4_K -o $MODELS/1b-q4_K.gguf & q4=$!
                $B/vkllm synth --preset $M1 --type f16 -o $MODELS/1b-f16.gguf
                timeout 25 $B/vkllm quantize $MODELS/1b-f16.gguf $MODELS/1b-q4_K_M.gguf Q4_K_M ||
                    echo "no Q4_K_M within 25 s: bench_k takes the q4_K synth"
                wait $q6; wait $q4; rm -f $MODELS/1b-f16.gguf'
step bench_k 30 'k=$MODELS/1b-q4_K_M.gguf; [ -f $k ] || k=$MODELS/1b-q4_K.gguf
                $B/vkllm info $k | grep "file type"
                $B/vkllm bench -m $k -p $PP -n $TG -r $R2 -o md
                $B/vkllm bench -m $MODELS/1b-q6_K.gguf -p $PP -n $TG -r $R2 -o md'

# Matvec workgroup shapes (rows per workgroup x workgroup size) on the 8B model's decode.
sweep() {
    for s in 2x64 4x64 4x128 8x128 8x256; do
        echo "-- VKLLM_MATVEC=$s"
        VKLLM_MATVEC=$s "$B/vkllm" bench -m $MODELS/8b.gguf -p 0 -n $SWEEP_N -r 1 -o csv | tail -1
    done
}
export -f sweep
step matvec_sweep 30 sweep

# A decode step split into layer groups within a frame budget (issue 13 item 4): half a token, and no split.
step frame 15 '$B/tests/embed/frame_loop $MODELS/1b.gguf 50% $FRAME_S $FRAME_N
               $B/tests/embed/frame_loop $MODELS/1b.gguf 1000000 $FRAME_S $FRAME_N'

# Where a token's GPU time goes, per op.
step profile 10 'VKLLM_PROFILE=1 $B/vkllm run -m $MODELS/8b.gguf -n $PROFILE_N -p a'

echo "time limits: $limits s${DRY_LIMIT:+ (a rehearsal: each step $DRY_LIMIT s at most)}" >>"$O/steps.txt"
cat "$O/steps.txt"
exit $failed
