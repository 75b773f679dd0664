#!/usr/bin/env bash
# examples/embed_minimal.c built the three ways an application gets vkllm, then run on stories260K:
#     package.sh find_package|pkg_config|add_subdirectory SOURCE_DIR BUILD_DIR MODEL
# find_package and pkg_config install BUILD_DIR into a fresh prefix first (cmake --install)
# and build against that, the shared and the static library each; add_subdirectory builds vkllm from
# SOURCE_DIR inside the consumer project (tests/embed/consumer). Exit 77 if the model is absent.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib_cli.sh"
set -o pipefail
way=$1 src=$2 build=$3 model=$4
[ -f "$model" ] || { echo "skipped: $model not found"; exit 77; }
cli_init "package_$way"
work=$TMP
prefix=$work/prefix
example=$src/examples/embed_minimal.c

# run NAME EXE: the example continues the prompt, and a shared-library build needs libvkllm.so.ABI.
run() {
    local out
    if ! out=$("$2" "$model" "Once upon a time" 16 2>"$work/stderr"); then
        fail "$1: the example failed: $(cat "$work/stderr")"
    elif [[ "$out" != "Once upon a time"?* ]]; then
        fail "$1: the example printed '$out'"
    else
        ok "$1: $out"
    fi
}
needs() {   # needs NAME EXE PATTERN: the executable's NEEDED libvkllm entries are PATTERN ("" for none)
    local got
    got=$(readelf -d "$2" | sed -n 's/.*NEEDED.*\[\(libvkllm[^]]*\)\].*/\1/p')
    if [ "$got" = "$3" ]; then ok "$1 needs '${got}'"; else fail "$1 needs '$got', expected '$3'"; fi
}
install_tree() {
    cmake --install "$build" --prefix "$prefix" > "$work/install.log" || { cat "$work/install.log"; exit 1; }
    soname=$(readelf -d "$build"/libvkllm.so | sed -n 's/.*SONAME.*\[\(.*\)\].*/\1/p')
    [ -n "$soname" ] || { echo "FAIL: libvkllm.so has no soname"; exit 1; }
}
configure_build() {   # configure_build DIR CMAKE_ARGS...
    local dir=$1
    shift
    cmake -S "$here/consumer" -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" > "$dir.log" 2>&1 &&
        cmake --build "$dir" -j2 --target embed_minimal >> "$dir.log" 2>&1 || { cat "$dir.log"; fail "building $dir"; return 1; }
}

case $way in
find_package)
    install_tree
    for use in shared static; do
        if configure_build "$work/$use" -DVKLLM_USE=$use -DCMAKE_PREFIX_PATH="$prefix"; then
            if [ $use = shared ]; then needs "find_package shared" "$work/$use/embed_minimal" "$soname"
            else needs "find_package static" "$work/$use/embed_minimal" ""; fi
            run "find_package $use" "$work/$use/embed_minimal"
        fi
    done
    ;;
pkg_config)
    command -v pkg-config > /dev/null || { echo "FAIL: pkg-config is not installed (Debian: pkgconf)"; exit 1; }
    install_tree
    export PKG_CONFIG_PATH
    PKG_CONFIG_PATH=$(dirname "$(find "$prefix" -name vkllm.pc)")
    version=$(pkg-config --modversion vkllm) && ok "pkg-config finds vkllm $version" || fail "pkg-config --modversion vkllm"
    libdir=$(pkg-config --variable=libdir vkllm)
    # shellcheck disable=SC2046
    if ${CC:-cc} -o "$work/shared" "$example" $(pkg-config --cflags --libs vkllm) -Wl,-rpath,"$libdir"; then
        needs "pkg-config shared" "$work/shared" "$soname"
        run "pkg-config shared" "$work/shared"
    else fail "cc with pkg-config --cflags --libs vkllm"; fi
    # A static link takes Libs.private (pkg-config --static) and libvkllm.a instead of libvkllm.so.
    static_libs=$(pkg-config --static --libs vkllm | sed 's/-lvkllm\b/-Wl,-Bstatic -lvkllm -Wl,-Bdynamic/')
    # shellcheck disable=SC2046,SC2086
    if ${CC:-cc} -o "$work/static" "$example" $(pkg-config --cflags vkllm) $static_libs; then
        needs "pkg-config static" "$work/static" ""
        run "pkg-config static" "$work/static"
    else fail "cc with pkg-config --static --libs vkllm"; fi
    ;;
add_subdirectory)
    # Unoptimized (no build type): this compiles all of vkllm, and only its linking is under test.
    if configure_build "$work/build" -DVKLLM_USE=add_subdirectory -DVKLLM_SOURCE_DIR="$src" -DCMAKE_BUILD_TYPE=; then
        run "add_subdirectory" "$work/build/embed_minimal"
    fi
    ;;
*) echo "unknown way: $way"; exit 1 ;;
esac
cli_finish
