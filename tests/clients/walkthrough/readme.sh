# Sourced by the README-driven tests (tests/clients/walkthrough/run.sh, tests/clients/cli/run.sh).
#
# The README's examples are the tests: a shell block in README.md is marked by the line just
# before its opening fence,
#
#     <!-- test: SUITE NAME -->
#     ```sh
#
# and readme_run extracts the marked blocks of the given suites and runs them VERBATIM, in
# document order, in one bash process with `set -euo pipefail` and the work directory as its
# current directory, as a reader pasting them into one terminal would. After each block,
# check_NAME (dashes become underscores) asserts what the block printed (t_out, t_err) and the
# variables it set. A marked block without a check, a check without a block, and a block that
# exits non-zero all fail, so README and tests cannot drift apart.
#
#   T_TMP=$(mktemp -d); t_init                 (results in $T_TMP/results)
#   readme_run README WORKDIR "SUITE..." CHECK_FILE...
#   t_summary cli                              → "cli: N passed, N failed"; non-zero on failures
#
# The t_* assertion helpers also serve checks written outside README blocks (set T_BLOCK).

t_init() {
    : "${T_TMP:?T_TMP must name a scratch directory}"
    T_RESULTS="$T_TMP/results"
    T_OUT="$T_TMP/out"
    mkdir -p "$T_OUT"
    : >"$T_RESULTS"
    export T_RESULTS T_OUT
}

t_pass() { printf 'PASS %s: %s\n' "${T_BLOCK:-?}" "$*" | tee -a "$T_RESULTS"; }
t_fail() { printf 'FAIL %s: %s\n' "${T_BLOCK:-?}" "$*" | tee -a "$T_RESULTS"; }

# t_eq DESC GOT WANT
t_eq() {
    if [[ "$2" == "$3" ]]; then t_pass "$1"; else t_fail "$1: got '$2', want '$3'"; fi
}
# t_match DESC GOT EXTENDED-REGEX
t_match() {
    if [[ "$2" =~ $3 ]]; then t_pass "$1"; else t_fail "$1: '$2' does not match /$3/"; fi
}
# t_has DESC TEXT SUBSTRING
t_has() {
    if [[ "$2" == *"$3"* ]]; then t_pass "$1"; else t_fail "$1: no '$3' in '${2:0:600}'"; fi
}
# t_json DESC JSON-TEXT JQ-FILTER WANT   (jq -r of the filter must equal WANT)
t_json() {
    local got
    if ! got=$(jq -r "$3" <<<"$2" 2>&1); then
        t_fail "$1: not JSON for $3: '${2:0:600}'"
        return
    fi
    t_eq "$1" "$got" "$4"
}
# t_ok DESC COMMAND...   (the command must succeed)
t_ok() {
    local desc=$1
    shift
    if "$@" >/dev/null 2>&1; then t_pass "$desc"; else t_fail "$desc: '$*' failed"; fi
}
# What the current block printed.
t_out() { cat "$T_OUT/$T_BLOCK.out"; }
t_err() { cat "$T_OUT/$T_BLOCK.err"; }

t_summary() {
    local passed failed
    passed=$(grep -c '^PASS ' "$T_RESULTS" || true)
    failed=$(grep -c '^FAIL ' "$T_RESULTS" || true)
    if [[ "$failed" -ne 0 ]]; then
        echo
        echo "failed checks:"
        grep '^FAIL ' "$T_RESULTS"
    fi
    echo "$1: $passed passed, $failed failed"
    [[ "$failed" -eq 0 && "$passed" -gt 0 ]]
}

# readme_blocks README DIR "SUITE..." → writes DIR/NN-NAME.sh, prints "SUITE NAME FILE" lines.
readme_blocks() {
    local readme=$1 dir=$2 suites=" $3 "
    mkdir -p "$dir"
    awk -v dir="$dir" -v suites="$suites" '
        function bad(msg) { printf "%s:%d: %s\n", FILENAME, NR, msg > "/dev/stderr"; failed = 1; exit 1 }
        /^<!-- test: / {
            if (inblock) bad("marker inside a code block")
            if (!match($0, /^<!-- test: [a-z][a-z0-9-]* [a-z0-9-]+ -->$/)) bad("marker must read <!-- test: SUITE NAME -->")
            suite = $3; name = $4
            if (seen[suite " " name]++) bad("block name " name " used twice in suite " suite)
            pending = 1
            next
        }
        pending {
            keep = index(suites, " " suite " ") > 0
            # other suites may mark blocks in other languages (the browser example is JS)
            if (keep && $0 !~ /^```(sh|bash)$/) bad("marker not followed by a ```sh fence")
            if ($0 !~ /^```[a-z]*$/) bad("marker not followed by a code fence")
            pending = 0; inblock = 1
            if (keep) { n++; file = sprintf("%s/%02d-%s.sh", dir, n, name); printf "" > file }
            next
        }
        inblock && /^```$/ {
            inblock = 0
            if (keep) { close(file); print suite, name, file }
            next
        }
        inblock && keep { print > file }
        END {
            if (failed) exit 1
            if (inblock || pending) bad("unterminated marked block")
        }
    ' "$readme"
}

# readme_run README WORKDIR "SUITE..." CHECK_FILE...
# Runs the marked blocks of those suites (see the top of this file). Returns non-zero when a
# block failed or did not run.
readme_run() {
    local readme=$1 work=$2 suites=$3
    shift 3
    local here list driver suite name file f
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    list="$T_TMP/blocks.txt"
    readme_blocks "$readme" "$T_TMP/blocks" "$suites" >"$list" || {
        T_BLOCK=README t_fail "cannot extract the marked blocks of $readme"
        return 1
    }
    if [[ ! -s "$list" ]]; then
        T_BLOCK=README t_fail "$readme has no blocks marked for: $suites"
        return 1
    fi
    driver="$T_TMP/driver.sh"
    {
        echo 'set -euo pipefail'
        echo 'exec 3>&1 4>&2   # the terminal, for the exit trap: a failing block may still hold its redirections'
        printf 'source %q\n' "$here/readme.sh"
        for f in "$@"; do printf 'source %q\n' "$f"; done
        printf 'T_BLOCKS=(%s)\n' "$(cut -d' ' -f2 "$list" | tr '\n' ' ')"
        echo '_T_DONE=()'
        printf 'T_START_DIR=%q\n' "$work"
        printf 'T_TMP=%q\n' "$T_TMP"
        echo "trap '_t_exit \$?' EXIT"
        printf 'cd %q\n' "$work"
        while read -r suite name file; do
            printf '_t_begin %q %q\n' "$name" "$suite"
            printf 'source %q >%q 2>%q\n' "$file" "$T_OUT/$name.out" "$T_OUT/$name.err"
            printf '_t_end\n'
        done <"$list"
        echo '_t_finish'
    } >"$driver"
    bash "$driver" </dev/null
}

# --- used inside the driver -------------------------------------------------------------

_t_begin() {
    T_BLOCK=$1
    _T_RUNNING=$1
    printf -- '--- README block %s (%s)\n' "$1" "$2"
}

# Shows the first lines of what a block printed, shortened.
_t_show() {
    local f=$1 label=$2
    [[ -s "$f" ]] || return 0
    head -n "${3:-12}" "$f" | cut -c1-160 | sed "s/^/    $label| /"
}

_t_end() {
    _T_RUNNING=
    _T_DONE+=("$T_BLOCK")
    _t_show "$T_OUT/$T_BLOCK.out" out
    _t_show "$T_OUT/$T_BLOCK.err" err 6
    local fn="check_${T_BLOCK//-/_}"
    if declare -F "$fn" >/dev/null; then
        (
            set +euo pipefail
            "$fn"
        ) || true
    else
        t_fail "no check_${T_BLOCK//-/_} for this README block"
    fi
}

_t_finish() {
    local fn name found
    # every check must have its block
    while read -r fn; do
        [[ "$fn" == check_* ]] || continue
        found=
        # shellcheck disable=SC2153 # T_BLOCKS is set by the driver
        for name in "${T_BLOCKS[@]}"; do
            [[ "check_${name//-/_}" == "$fn" ]] && found=1
        done
        [[ -n "$found" ]] || T_BLOCK=README t_fail "the README has no block for $fn"
    done < <(declare -F | awk '{print $3}')
    _T_FINISHED=1
}

_t_exit() {
    local status=$1 name ran
    trap - EXIT
    exec 1>&3 2>&4
    if [[ -n "${_T_RUNNING:-}" ]]; then
        T_BLOCK=$_T_RUNNING t_fail "the README block exited with status $status"
        _t_show "$T_OUT/$_T_RUNNING.out" out 20
        _t_show "$T_OUT/$_T_RUNNING.err" err 20
    fi
    if [[ -z "${_T_FINISHED:-}" ]]; then
        # shellcheck disable=SC2153 # T_BLOCKS is set by the driver
        for name in "${T_BLOCKS[@]}"; do
            ran=
            for r in "${_T_DONE[@]}" "${_T_RUNNING:-}"; do [[ "$r" == "$name" ]] && ran=1; done
            [[ -n "$ran" ]] || T_BLOCK=$name t_fail "not run: an earlier README block failed"
        done
        exit 1
    fi
    exit "$status"
}
