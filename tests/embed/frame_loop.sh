#!/usr/bin/env bash
# examples/frame_loop.c on a model: stories260K (77 if absent), "synth" (the tiny synthetic model) or
# "split" (a synthetic SmolLM-135M, 30 thin layers), the synthetic ones written first; 3 s at most.
# frame_loop exits 1 if no text came out or a vkllm submission in its loop exceeded the budget (GPU
# timestamps). The budget is 50 ms, or for "split" 90% of one token's GPU time (each token then goes in
# groups of layers). lavapipe runs one token of the small models in 1-6 ms, but its "GPU" is CPU threads, so
# its timestamps also count the time the OS preempted them; on a busy machine one run in several sees a
# single token take 100+ ms. So a budget failure is run once more, and only a second one fails the test.
# "split" aims its submissions at 3/4 of a budget that is itself below one token's time, so preemption alone
# puts it over (CI saw 91 ms against 59 ms): there the budget is reported, not asserted, and the test asks
# for text from the split loop. That the steps really split, each group chosen from measured layer times, and
# give the unsplit logits is asserted without timing by test_decode_async and test_runtime.
#     frame_loop.sh FRAME_LOOP_BINARY VKLLM_BINARY MODEL|synth|split
set -u
bin=$1 vkllm=$2 model=$3
budget=50000 tokens=24
if [ "$model" = synth ] || [ "$model" = split ]; then
    preset=tiny type=q8_0
    if [ "$model" = split ]; then preset=smollm-135m type=q4_0 budget=90% tokens=8; fi
    model=${VKLLM_TEST_TMP:-/tmp}/frame-loop-$preset-$$.gguf
    trap 'rm -f "$model"' EXIT
    "$vkllm" synth --preset $preset --type $type -o "$model" --seed 3 > /dev/null || { echo "FAIL: synth"; exit 1; }
fi
runs=2
for ((i = 1; i <= runs; i++)); do
    out=$("$bin" "$model" $budget 3 $tokens); rc=$?
    echo "$out"
    if [ "$3" = split ] && [ $rc = 1 ] && grep -q "over the budget" <<< "$out" && grep -q "^[1-9][0-9]* tokens" <<< "$out"; then
        echo "note: over the budget on lavapipe's preemptible timestamps; not asserted for split (see above)"
        rc=0
    fi
    if [ $rc != 1 ] || ! grep -q "over the budget" <<< "$out"; then
        break
    fi
    [ $i -lt $runs ] && echo "one more run (lavapipe's timestamps include preemption by other processes)"
done
exit $rc
