#!/usr/bin/env bash
# Regroups host/ into one folder per concern and gives every internal linker symbol defined in host/ the
# prefix vkl_ (issue 11: our internal names, e.g. gguf_find_key or llama_model_free, clashed with
# llama.cpp's exports in one process). A script rather than a commit, so that it can run after branches
# that still edit the old paths are merged.
#
#     tools/dev/regroup.sh            # from the repository root, on a clean working tree
#     tools/dev/regroup.sh --check    # only list the planned moves and the files it has no folder for
#
# Environment: REGROUP_BUILD (build folder it configures if needed and builds; default: build).
#
# What it does, each step a no-op when already done (running it twice changes nothing the second time):
#   1. moves every top-level host/*.c and *.h to its folder (table `destination` below) with git mv, and
#      fails before changing anything, listing the files, if one has no folder: add it to the table;
#   2. rewrites every path that names a moved file (#include "host/gguf.h" -> "host/format/gguf.h", CMake,
#      documentation, generators) and the CMake source lists: host/tools/ (synth.c, bench.c) becomes the
#      static library vkllm_tools for the vkllm command, tests and benchmarks, outside libvkllm;
#   3. builds the library objects, reads the global symbols each host/ object defines (nm) and renames
#      those not starting with vkllm_ (public API), vkr_ (runtime/) or vkl_ to vkl_<name> (vk_<name>
#      becomes vkl_<name>) in C/GLSL sources and comments, backquoted names in Markdown and the Python
#      generators; string literals (messages, GGUF keys) and struct members (after . or ->) keep their text;
#   4. adds the prefix check to tests/embed/exported_symbols.sh and rewrites README's host/ paragraph
#      (tests/embed/ and examples/ are applications: their names stay, embed_app.c keeps ggml's);
#   5. builds everything and fails listing any global symbol of libvkllm_internal.a or libvkllm_tools.a
#      that does not start with vkllm_, vkr_, vkl_, vk[A-Z] or volk (Vulkan entry points from volk).
# It never commits: review `git status` / `git diff --stat`, build, run ctest, then commit.
set -euo pipefail

die() { echo "regroup: $*" >&2; exit 1; }
[ -f CMakeLists.txt ] && [ -d host ] && [ -d .git -o -f .git ] || die "run it from the repository root"
check_only=0
case "${1:-}" in
    --check) check_only=1 ;;
    "") ;;
    *) die "unknown argument '$1' (usage: tools/dev/regroup.sh [--check])" ;;
esac
self=tools/dev/regroup.sh
build=${REGROUP_BUILD:-build}

# ---- 1. The folder of each top-level host/ file (patterns: files helpers add later land too) ----
# format/  the GGUF file format, weight types and quantization (CPU side)
# text/    tokenizers, Unicode tables, chat templates
# ops/     device tensors and the graph ops (kernel + dispatch rules)
# model/   architectures as data and the forward graph built from them
# .        (stays in host/) the public API's implementation: api.c, state.c, sampler, version
# tools/   synthetic models and device measurements: vkllm command, tests, benchmarks; not in libvkllm
destination() {
    case "$1" in
        gguf.[ch] | gguf_*.[ch] | ggml_*.[ch] | quant.[ch] | quant_*.[ch] | quantize.[ch] | quantize_*.[ch])
            echo format ;;
        tokenizer.[ch] | tokenizer_*.[ch] | unicode.[ch] | unicode_*.[ch] | merge_heap.[ch] | \
        chat_template.[ch] | chat_template_*.[ch])
            echo text ;;
        ops.h | ops_*.[ch] | tensor.[ch] | tensor_*.[ch])
            echo ops ;;
        arch.[ch] | arch_*.[ch] | llama.[ch] | llama_*.[ch])
            echo model ;;
        api.c | api_*.[ch] | state.c | state_*.[ch] | sampler.[ch] | sampler_*.[ch] | version.c)
            echo . ;;
        synth.[ch] | synth_*.[ch] | bench.[ch] | bench_*.[ch])
            echo tools ;;
        *) return 1 ;;
    esac
}

moves=() unmapped=()
while IFS= read -r path; do
    name=${path#host/}
    if dir=$(destination "$name"); then
        [ "$dir" = . ] || moves+=("$name $dir")
    else
        unmapped+=("$path")
    fi
done < <(git ls-files 'host/*.c' 'host/*.h' | grep -E '^host/[^/]+$' | sort)
# Files not yet added to git cannot be moved with git mv.
untracked=$(git ls-files --others --exclude-standard 'host/*.c' 'host/*.h' | grep -E '^host/[^/]+$' | sort) || true

if [ "${#unmapped[@]}" -gt 0 ]; then
    echo "regroup: no folder for these host/ files; add them to destination() in $self and run it again:" >&2
    printf '  %s\n' "${unmapped[@]}" >&2
fi
if [ -n "$untracked" ]; then
    echo "regroup: these host/ files are not in git; git add (or remove) them first:" >&2
    echo "$untracked" | sed 's/^/  /' >&2
fi
[ "${#unmapped[@]}" = 0 ] && [ -z "$untracked" ] || exit 1
if [ "$check_only" = 1 ]; then
    echo "${#moves[@]} files to move:"
    for m in "${moves[@]}"; do set -- $m; echo "  host/$1 -> host/$2/$1"; done
    exit 0
fi
# A first run starts from a clean tree (its result is then exactly the script's); a run that finds the
# files already moved (a second run, or one after a failed build) goes on from where the tree is.
[ "${#moves[@]}" = 0 ] || [ -z "$(git status --porcelain --untracked-files=no)" ] ||
    die "the working tree has uncommitted changes; commit or stash them first"

for m in "${moves[@]}"; do
    set -- $m
    mkdir -p "host/$2"
    git mv "host/$1" "host/$2/$1"
    echo "moved host/$1 -> host/$2/$1"
done

# ---- 2. Paths that name a moved file ----
# Every text file git tracks, except this script and the fuzz inputs (data).
text_files() {
    git ls-files -z | grep -zvE "^($self|fuzz/corpus/|fuzz/regressions/)" | xargs -0 grep -lIZ "$1" -- 2>/dev/null || true
}
if [ "${#moves[@]}" -gt 0 ]; then
    map=$(for m in "${moves[@]}"; do set -- $m; echo "$1 $2"; done)
    text_files 'host/' | MAP="$map" xargs -0 -r perl -pi -e '
        BEGIN {
            %d = map { split / / } split /\n/, $ENV{MAP};
            $re = join "|", map { quotemeta } sort { length($b) <=> length($a) || $a cmp $b } keys %d;
        }
        s{(?<![\w/.-])host/($re)(?!\w|\.\w)}{host/$d{$1}/$1}g;'
fi

# edit FILE DONE_REGEX OLD_REGEX <<NEW: replaces OLD (a Perl regex; ^ and $ match at lines, . matches
# newlines) by NEW (@1@ = OLD's first group) once, unless DONE is already there; fails when neither is
# found (the file changed since this script was written: make that change by hand).
edit() {
    local file=$1 done_re=$2 old_re=$3 new
    new=$(cat)   # without its last newline: OLD never ends with one
    if DONE="$done_re" perl -0ne 'exit(/$ENV{DONE}/m ? 0 : 1)' "$file"; then return 0; fi
    OLD="$old_re" NEW="$new" perl -0pi -e '
        BEGIN { $n = 0 }
        $n += s{$ENV{OLD}}{ my ($g, $r) = ($1, $ENV{NEW}); $r =~ s/\@1\@/$g/g; $r }mse;
        END { exit($n == 1 ? 0 : 3) }' "$file" ||
        die "$file: cannot find /$old_re/ to change; make that change by hand"
    echo "edited $file"
}

edit CMakeLists.txt 'host/format/\*\.c' 'file\(GLOB VKLLM_HOST_SOURCES CONFIGURE_DEPENDS host/\*\.c\)' <<'EOF'
# host/tools, host/cli and host/serve are not part of the library (see below).
file(GLOB VKLLM_HOST_SOURCES CONFIGURE_DEPENDS host/*.c host/format/*.c host/text/*.c host/ops/*.c host/model/*.c)
EOF
edit CMakeLists.txt 'add_library\(vkllm_tools ' '^(  file\(GLOB VKLLM_SERVE_SOURCES)' <<'EOF'
  # Synthetic models and device measurements (host/tools/): for the command, tests and benchmarks only.
  file(GLOB VKLLM_TOOLS_SOURCES CONFIGURE_DEPENDS host/tools/*.c)
  add_library(vkllm_tools STATIC ${VKLLM_TOOLS_SOURCES})
  target_link_libraries(vkllm_tools PUBLIC vkllm_internal)
@1@
EOF
edit CMakeLists.txt 'vkllm PRIVATE vkllm_serve vkllm_tools' \
    'target_link_libraries\(vkllm PRIVATE vkllm_serve vkllm_internal\)' <<'EOF'
target_link_libraries(vkllm PRIVATE vkllm_serve vkllm_tools vkllm_internal)
EOF
edit tests/CMakeLists.txt 'vkllm_testlib PUBLIC vkllm_tools' \
    'target_link_libraries\(vkllm_testlib PUBLIC vkllm_internal\)' <<'EOF'
target_link_libraries(vkllm_testlib PUBLIC vkllm_tools vkllm_internal)
EOF
edit bench/CMakeLists.txt 'PRIVATE vkllm_tools' 'target_link_libraries\(\$\{name\} PRIVATE vkllm_internal\)' <<'EOF'
target_link_libraries(${name} PRIVATE vkllm_tools vkllm_internal)
EOF
edit tests/embed/CMakeLists.txt 'TARGET_FILE:vkllm_tools' '\$<TARGET_FILE:vkllm_internal>\)' <<'EOF'
$<TARGET_FILE:vkllm_internal> $<TARGET_FILE:vkllm_tools>)
EOF

# ---- 3. Internal symbols get vkl_ ----
# Configured again each time: the CMake lists changed above.
if [ -f "$build/CMakeCache.txt" ]; then
    cmake -S . -B "$build" >/dev/null
else
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
echo "building the library objects in $build ..."
cmake --build "$build" --target vkllm_internal vkllm_tools -j"$(nproc)" >/dev/null ||
    die "the build failed (cmake --build $build --target vkllm_internal vkllm_tools); fix it and run again"

prefixed='^(vkllm_|vkr_|vkl_|vk[A-Z]|volk|__)|[.]'
syms=$(mktemp) objs=$(mktemp) members=$(mktemp) tmp_pl=$(mktemp)
trap 'rm -f "$syms" "$objs" "$members" "$tmp_pl"' EXIT
# The objects of the current host/ sources (stale objects of moved files may still lie in the build folder).
for src in $(git ls-files 'host/*.c' | grep -vE '^host/(cli|serve)/'); do
    for dir in vkllm_objects vkllm_tools ""; do
        [ -n "$dir" ] || die "no object for $src in $build"
        obj="$build/CMakeFiles/$dir.dir/$src.o"
        if [ -f "$obj" ]; then echo "$obj" >> "$objs"; break; fi
    done
done
xargs nm -g --defined-only < "$objs" | awk 'NF == 3 {print $3}' | { grep -vE "$prefixed" || true; } | sort -u > "$syms"
echo "$(wc -l < "$syms") internal symbols to rename"

cat > "$tmp_pl" <<'PERL'
# Renames whole identifiers found in the symbol list. C and GLSL: everywhere except string and character
# literals, member names (after . or ->) and file names (before .c, .h, ...). A name that is also a struct
# member's somewhere (o->synth_preset) or the name of the file (bench/bench_matvec.c: a program named like
# a function) changes only where it is called or declared: before "(".
# Markdown: `name` and `name(`. Python generators: everywhere.
BEGIN {
    open my $f, '<', $ENV{SYMS} or die; while (<$f>) { chomp; $new{$_} = /^vk_(.*)/ ? "vkl_$1" : "vkl_$_"; }
    open $f, '<', $ENV{MEMBERS} or die; while (<$f>) { chomp; $member{$_} = 1; }
    $/ = undef;   # with -i: each file in one read
}
sub ident {
    my ($text, $stem) = @_;
    $text =~ s{(?<![\w.])(?<!->)([A-Za-z_]\w*)(?!\w)(?!\.(?:c|h|o|sh|md|py|cmake|comp|glsl)\b)}{
        my ($id, $end) = ($1, $+[1]);
        (exists $new{$id} && !(($id eq $stem || $member{$id}) && substr($text, $end) !~ /^\s*\(/)) ? $new{$id} : $id
    }ge;
    return $text;
}
while (<>) {
    my ($stem) = $ARGV =~ m{([^/]+?)(?:\.[^./]*)?$};
    if ($ARGV =~ /\.(?:c|h|comp|glsl)$/) {
        s{("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')|((?:[^"'/]|/(?![*/])|/\*.*?\*/|//[^\n]*)+)}{
            defined $1 ? $1 : ident($2, $stem)
        }gse;
    } elsif ($ARGV =~ /\.md$/) {
        s{`([A-Za-z_]\w*)(?=[`(])}{exists $new{$1} ? "`$new{$1}" : "`$1"}ge;
    } elsif ($ARGV =~ /\.py$/) {
        $_ = ident($_, $stem);
    }
    print;
}
PERL
if [ -s "$syms" ]; then
    pattern=$(paste -sd'|' "$syms")
    { git grep -ohE '(\.|->)[A-Za-z_][A-Za-z_0-9]*' -- '*.c' '*.h' || true; } | sed -E 's/^(\.|->)//' | sort -u |
        comm -12 - "$syms" > "$members"
    [ ! -s "$members" ] || echo "also struct members (renamed only before \"(\"): $(tr '\n' ' ' < "$members")"
    # Not in tests/embed/ and examples/: applications, whose own functions named like ggml's (embed_app.c)
    # must keep their names.
    git ls-files -z '*.c' '*.h' '*.comp' '*.glsl' '*.md' '*.py' |
        grep -zvE "^($self|fuzz/corpus/|fuzz/regressions/|tests/embed/|examples/)" |
        { xargs -0 grep -lZwE "$pattern" -- || true; } | SYMS="$syms" MEMBERS="$members" xargs -0 -r perl -i "$tmp_pl"
    tr '\n' ' ' < "$syms" | fold -s -w 110; echo
fi

# ---- 4. The test that keeps it so, and README ----
edit tests/embed/exported_symbols.sh 'vkl_\|vk\[A-Z\]' '^(\[ "\$failures" = 0 \])' <<'EOF'
# Internal names carry our prefixes (they share a process with llama.cpp, ggml or the application's own
# Vulkan code): vkllm_ (API), vkr_ (runtime/), vkl_ (host/), Vulkan entry points and volk (vk[A-Z], volk).
# Names starting with __ or holding a dot are the compiler's (sanitizers).
shift 4
for lib in "$internal" "$@"; do
    nm -g --defined-only "$lib" | awk 'NF == 3 {print $3}' |
        grep -vE '^(vkllm_|vkr_|vkl_|vk[A-Z]|volk|__)|[.]' | sort -u > "$tmp/unprefixed" || true
    if [ -s "$tmp/unprefixed" ]; then
        fail "$(basename "$lib") defines names without our prefixes: $(tr '\n' ' ' < "$tmp/unprefixed")"
    else
        echo "ok: every global name of $(basename "$lib") has our prefix"
    fi
done
@1@
EOF
edit tests/embed/exported_symbols.sh 'libvkllm_internal\.a \[libvkllm_tools\.a' \
    '^(#     exported_symbols\.sh INCLUDE_DIR libvkllm\.so libvkllm\.a libvkllm_internal\.a)$' <<'EOF'
@1@ [libvkllm_tools.a ...]
# Every global name of the internal libraries carries our prefixes.
EOF
edit tests/embed/embed_app.c 'ggml.s names and signatures; vkllm.s internal functions had' \
    'ggml.s names and signatures; vkllm has internal functions of the same names\.' <<'EOF'
ggml's names and signatures; vkllm's internal functions had the same names before they took the vkl_ prefix.
EOF
edit README.md 'host/` — the LLM runtime, one folder per concern' '^- `host/` — the LLM runtime:.*?(?=\n- `cmake/`)' <<'EOF'
- `host/` — the LLM runtime, one folder per concern; internal functions and globals start with `vkl_`
  (`vkllm_` is the public API, `vkr_` the Vulkan layer):
  - `host/format/` — the GGUF reader/writer (`gguf.c`: read with `pread`, so a model file changed while
    loading is an error and not a crash; written to a temporary file renamed when complete), the weight-type
    table with CPU dequantization (`quant.c`), the quantizers and `vkllm quantize`'s choices (`quantize*.c`);
  - `host/text/` — tokenizers (`tokenizer*.c`), the Unicode classes of the BPE pre-tokenizers, chat templates;
  - `host/ops/` — device weights (`tensor.c`) and the kernels as graph ops (`ops_*.c`);
  - `host/model/` — the model families as data (`arch.c`) and the graph built from them (`llama.c`);
  - `host/` itself — the public API (`api.c`, `state.c`) and the sampler;
  - `host/tools/` — synthetic models (`synth.c`) and device measurements (`bench.c`) for the command, the
    tests and the benchmarks, not part of libvkllm; `host/cli/` — the `vkllm` command, `host/serve/` its
    server.
EOF
edit README.md 'link `vkllm_internal` \(all internal symbols\) and' \
    'files; the CLI, tests and benchmarks link `vkllm_internal` \(all internal symbols\)\. `examples/` — programs\n  on the public API only\.' <<'EOF'
files; the CLI, tests and benchmarks link `vkllm_internal` (all internal symbols) and `vkllm_tools`
  (host/tools/). `examples/` — programs on the public API only.
EOF

# ---- 5. Check ----
# References to host/ files that no longer exist (a comment or document written against the old layout).
stale=$(text_files 'host/' | xargs -0 -r grep -noE '(^|[^A-Za-z0-9_/.-])host/[A-Za-z0-9_]+\.[ch]\b' |
    while IFS=: read -r file line ref; do
        ref=${ref#"${ref%%host/*}"}
        [ -e "$ref" ] || echo "  $file:$line: $ref"
    done) || true
[ -z "$stale" ] || { echo "regroup: these lines name host/ files that do not exist:" >&2; echo "$stale" >&2; }

echo "building everything in $build ..."
cmake --build "$build" -j"$(nproc)" >/dev/null || die "the build failed after renaming (cmake --build $build)"
left=$(nm -g --defined-only "$build/libvkllm_internal.a" "$build/libvkllm_tools.a" | awk 'NF == 3 {print $3}' |
    grep -vE "$prefixed" | sort -u) || true
if [ -n "$left" ]; then
    echo "regroup: global names still without our prefixes:" >&2
    echo "$left" | sed 's/^/  /' >&2
    exit 1
fi
[ -z "$stale" ] || exit 1
echo "done: every global name of libvkllm_internal.a and libvkllm_tools.a has our prefix"
echo "next: build everything, ctest, then commit ('Regroup host/ ... (generated by tools/dev/regroup.sh)')"
