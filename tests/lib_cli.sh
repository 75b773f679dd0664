# Helpers shared by the command-line tests (tests/cli_*.sh), sourced as
#     . "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh"
#     cli_init NAME
# ctest passes VKLLM_BIN (the vkllm binary), VKLLM_SHARED (../shared) and VKLLM_TEST_TMP (a scratch
# directory); a script also runs by hand with those set. Each check prints "ok: ..." or "FAIL: ...";
# cli_finish exits 1 if any check failed, 77 (skipped) is for missing data or devices.
set -u

BIN=${VKLLM_BIN:?VKLLM_BIN must point at the vkllm binary}
SHARED=${VKLLM_SHARED:-../shared}
cli_name=
cli_failures=0
# If set, every expect_error also wants stderr to start with it (e.g. "vkllm tokenize: ").
CLI_ERROR_PREFIX=${CLI_ERROR_PREFIX:-}

# cli_init NAME: $TMP, a fresh directory of this script's own (tests run in parallel), removed at exit.
cli_init() {
    cli_name=$1
    TMP=$(mktemp -d "${VKLLM_TEST_TMP:-/tmp}/$1.XXXXXX") || { echo "FAIL: cannot create a scratch directory"; exit 1; }
    trap 'rm -rf "$TMP"' EXIT
}

ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    cli_failures=$((cli_failures + 1))
}

# The summary line; exit status 1 if any check failed.
cli_finish() {
    if [ "$cli_failures" -ne 0 ]; then
        echo "$cli_name: $cli_failures check(s) FAILED"
        exit 1
    fi
    echo "$cli_name: all checks passed"
    exit 0
}

# cli_skip REASON: skipped (77) unless a check already failed, which must not be hidden by the skip.
cli_skip() {
    [ "$cli_failures" -eq 0 ] || cli_finish
    echo "SKIP: $*"
    exit 77
}

cli_require_device() {
    "$BIN" devices >/dev/null 2>&1 || cli_skip "no Vulkan device"
}

# Runs CMD... with stdout in $TMP/out and stderr in $TMP/err; its exit status in $rc.
cli_run() {
    "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
}

# expect_ok CMD...: exit status 0 (stderr may say something). Returns 1 after a FAIL, so a caller can go
# on to check $TMP/out and $TMP/err only when it ran.
expect_ok() {
    cli_run "$@"
    if [ "$rc" -ne 0 ]; then
        fail "'$*' exited $rc (want 0): $(head -c 600 "$TMP/err")"
        return 1
    fi
}

# expect_quiet CMD...: exit status 0 and nothing on stderr.
expect_quiet() {
    expect_ok "$@" || return 1
    if [ -s "$TMP/err" ]; then
        fail "'$*' wrote to stderr: $(head -c 600 "$TMP/err")"
        return 1
    fi
}

# expect_stdout NAME WANT CMD...: exit status 0, nothing on stderr, stdout exactly the line WANT.
expect_stdout() {
    local name=$1 want=$2
    shift 2
    expect_quiet "$@" || return 1
    printf '%s\n' "$want" >"$TMP/want"
    if cmp -s "$TMP/out" "$TMP/want"; then
        ok "$name"
    else
        fail "$name: want '$want', got '$(head -c 500 "$TMP/out")'"
        return 1
    fi
}

# expect_error [-E] WANT CMD...: exit status 1 and exactly one newline-terminated line on stderr (under
# ctest the validation layer is on, so a validation message would show as an extra line), starting with
# $CLI_ERROR_PREFIX and containing WANT: a fixed string, or with -E an extended regular expression.
expect_error() {
    local how=-F
    if [ "$1" = -E ]; then
        how=-E
        shift
    fi
    local want=$1
    shift
    cli_run "$@"
    local err
    err=$(head -c 600 "$TMP/err")
    if [ "$rc" -ne 1 ]; then
        fail "'$*' exited $rc (want 1): $err"
    elif [ "$(wc -l <"$TMP/err")" -ne 1 ] || [ "$(tail -c 1 "$TMP/err" | wc -l)" -ne 1 ]; then
        fail "'$*' did not print exactly one line on stderr: $err"
    elif [ -n "$CLI_ERROR_PREFIX" ] && [ "${err#"$CLI_ERROR_PREFIX"}" = "$err" ]; then
        fail "'$*': stderr does not start with '$CLI_ERROR_PREFIX': $err"
    elif ! grep -q "$how" -- "$want" "$TMP/err"; then
        fail "'$*': want '$want' in: $err"
    else
        ok "$want"
        return 0
    fi
    return 1
}
