#!/usr/bin/env bash
# Run other projects' own test suites bare and under telemetryflow-run, and compare.
#
#   scripts/peer_suites.sh [requests|flask|urllib3|all]...     (default: all)
#
# For each project: a venv of its own (cached) with this checkout installed editable, the
# sdist of a pinned release unpacked, the test dependencies from the project's own
# [dependency-groups]; then its test suite runs bare, then under the launcher with
# TELEMETRYFLOW_EXPORTER=none, then under the launcher exporting OTLP to a closed loopback
# port. scripts/peer_suites_compare.py prints the counts and every test that passes bare
# and fails launched. Exit 0 when nothing regresses, 1 when something does, 2 when a
# suite could not be set up or its bare run produced no result.
#
# Environment (all optional):
#   TELEMETRYFLOW_PEER_DIR      cache: venvs, sdists, results (default ~/.cache/telemetryflow-peer)
#   TELEMETRYFLOW_PEER_RESULTS  where the XML, logs and comparisons go (default $PEER_DIR/results)
#   TELEMETRYFLOW_PEER_PYTHON   interpreter for the venvs (default: python3)
#   TELEMETRYFLOW_PEER_MODES    launched runs, from: none otlp (default: "none otlp")
#   TELEMETRYFLOW_PEER_TIMEOUT  seconds per pytest run (default 900)
#   TELEMETRYFLOW_PEER_TEST_TIMEOUT  seconds per test, pytest-timeout (default 120)
#   TELEMETRYFLOW_PEER_RERUN    1: re-run the regressed tests twice more: as they were (a pass
#                               there means flaky) and with TELEMETRYFLOW_PROPAGATORS=none (a
#                               pass there means the injected traceparent header did it) (default 1)
#   TELEMETRYFLOW_PEER_ALLOW_PROPAGATION  1: regressions caused only by the traceparent header
#                               (by design) do not make the exit status 1 (default 0)
#   TELEMETRYFLOW_PEER_PYTEST_ARGS  extra pytest arguments for every run (shell-quoted), e.g.
#                               "-W 'ignore:The ...:DeprecationWarning'" or "-k 'not slow'"
#   TELEMETRYFLOW_PEER_<PROJECT>_VERSION  override a pin, e.g. TELEMETRYFLOW_PEER_FLASK_VERSION
#   TELEMETRYFLOW_PEER_REBUILD  1: recreate the venvs
#
# Only loopback traffic: every run uses pytest-socket's --allow-hosts so a test that
# would reach the Internet (or a "tarpit" address) fails at connect() in both runs instead.
# shellcheck disable=SC2030,SC2031  # the runs set their variables in subshells on purpose
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(cd "$HERE/.." && pwd -P)"
PEER_DIR="${TELEMETRYFLOW_PEER_DIR:-$HOME/.cache/telemetryflow-peer}"
RESULTS_ROOT="${TELEMETRYFLOW_PEER_RESULTS:-$PEER_DIR/results}"
PYTHON="${TELEMETRYFLOW_PEER_PYTHON:-python3}"
MODES="${TELEMETRYFLOW_PEER_MODES:-none otlp}"
SUITE_TIMEOUT="${TELEMETRYFLOW_PEER_TIMEOUT:-900}"
TEST_TIMEOUT="${TELEMETRYFLOW_PEER_TEST_TIMEOUT:-120}"
RERUN="${TELEMETRYFLOW_PEER_RERUN:-1}"
ALLOW_PROPAGATION="${TELEMETRYFLOW_PEER_ALLOW_PROPAGATION:-0}"
COMPARE="$HERE/peer_suites_compare.py"
ALLOW_HOSTS="127.0.0.1,::1,localhost"
ALL_PROJECTS=(requests flask urllib3)

log() { printf '[peer %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 2; }

usage() {
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

if ! grep -qs 'telemetryflow-bootstrap' "$ROOT/pyproject.toml"; then
    die "$ROOT is not a telemetryflow-bootstrap checkout"
fi
command -v "$PYTHON" >/dev/null || die "no $PYTHON (set TELEMETRYFLOW_PEER_PYTHON)"
for mode in $MODES; do
    [[ $mode == none || $mode == otlp ]] || die "unknown mode '$mode' in TELEMETRYFLOW_PEER_MODES"
done
"$PYTHON" -c 'import shlex, sys; shlex.split(sys.argv[1])' "${TELEMETRYFLOW_PEER_PYTEST_ARGS:-}" \
    2>/dev/null || die "TELEMETRYFLOW_PEER_PYTEST_ARGS is not valid shell quoting"

# ---------------------------------------------------------------------------------------
# Per project: the pinned release (the versions in the project's .venv when this was
# written), the extras to install it with, the [dependency-groups] its tests need, what
# else they need, and the pytest selection. Every pinned sdist ships its test suite.
# ---------------------------------------------------------------------------------------
project_setup() {
    P_NAME="$1"
    P_SELECT=()
    case "$1" in
    requests)
        P_VERSION="${TELEMETRYFLOW_PEER_REQUESTS_VERSION:-2.34.2}"
        P_EXTRAS="socks"
        P_GROUPS="test"
        P_MORE=()
        P_SELECT=(tests)
        ;;
    flask)
        P_VERSION="${TELEMETRYFLOW_PEER_FLASK_VERSION:-3.1.3}"
        P_EXTRAS="async,dotenv"
        P_GROUPS="tests"
        P_MORE=()
        P_SELECT=(tests)
        ;;
    urllib3)
        P_VERSION="${TELEMETRYFLOW_PEER_URLLIB3_VERSION:-2.8.0}"
        P_EXTRAS="brotli,zstd,socks,h2"
        P_GROUPS="test"
        # From its "dev" group: what the TLS tests need (they are skipped without it).
        P_MORE=(trustme cryptography pyopenssl idna)
        # requires_network tests need the Internet (none here); deselected in both runs.
        P_SELECT=(test -m "not requires_network")
        ;;
    *) die "unknown project '$1' (requests, flask, urllib3 or all)" ;;
    esac
    # Every suite: the loopback guard and the per-test timeout.
    P_MORE+=(pytest-socket pytest-timeout)
    P_HOME="$PEER_DIR/$P_NAME-$P_VERSION"
    P_VENV="$P_HOME/venv"
    P_SRC="$P_HOME/src/$P_NAME-$P_VERSION"
    P_RESULTS="$RESULTS_ROOT/$P_NAME-$P_VERSION"
}

# The requirements of some [dependency-groups] of a pyproject.toml, one a line: include-group
# resolved, the project itself (installed from the sdist) and coverage/parallel/profiling
# tools (they change nothing about what is tested) left out.
group_requirements() {
    "$PYTHON" - "$1" "$2" "$3" <<'PY'
import re, sys, tomllib
path, project, wanted = sys.argv[1], sys.argv[2].lower(), sys.argv[3].split(",")
groups = tomllib.load(open(path, "rb")).get("dependency-groups", {})
skip = {"pytest-cov", "coverage", "pytest-xdist", "pytest-memray", "build", "towncrier"}
out = []
def walk(name, seen=()):
    if name in seen:
        return
    if name not in groups:
        sys.exit(f"no dependency group {name!r} in {path}")
    for item in groups[name]:
        if isinstance(item, dict):
            walk(item["include-group"], (*seen, name))
            continue
        dist = re.split(r"[\s\[<>=!~;@]", item, 1)[0].lower().replace("_", "-")
        if dist == project or dist in skip or item in out:
            continue
        out.append(item)
for group in wanted:
    walk(group)
print("\n".join(out))
PY
}

# Pins from the project's uv.lock (when it ships one) for what its tests run on: pytest,
# the test groups' packages, the project's own dependencies and extras, and P_MORE. Only
# names locked at a single version from a registry (a git source, or several versions for
# different markers, stay unpinned). Without it the newest pytest may lack what an older
# test suite imports (flask 3.1.3's tests need _pytest.monkeypatch.notset, gone in 9.2).
lock_constraints() {
    "$P_VENV/bin/python" - "$1" "$2" "$3" "$4" "${@:5}" <<'PY'
import os, re, sys, tomllib
pyproject, lock, project, groups_arg, *more = sys.argv[1:]
if not os.path.exists(lock):
    sys.exit(0)
def norm(text):
    return re.split(r"[\s\[<>=!~;@]", text.strip(), 1)[0].lower().replace("_", "-").replace(".", "-")
meta = tomllib.load(open(pyproject, "rb"))
groups = meta.get("dependency-groups", {})
wanted = {"pytest", *(norm(m) for m in more)}
def walk(name):
    for item in groups.get(name, ()):
        if isinstance(item, dict):
            walk(item["include-group"])
        else:
            wanted.add(norm(item))
for group in groups_arg.split(","):
    walk(group)
proj = meta.get("project", {})
wanted.update(norm(d) for d in proj.get("dependencies", ()))
for extra in proj.get("optional-dependencies", {}).values():
    wanted.update(norm(d) for d in extra)
try:  # packaging as pip vendors it: this runs with the project's venv Python
    from pip._vendor.packaging.markers import Marker
except ImportError:
    Marker = None
def applies(package):
    # A package locked at several versions carries the markers that pick each one; keep
    # the one for this interpreter (no optional group selected).
    markers = package.get("resolution-markers")
    if not markers:
        return True
    if Marker is None:
        return False
    try:
        return any(Marker(m).evaluate({"extra": ""}) for m in markers)
    except Exception:
        return False
versions = {}
for package in tomllib.load(open(lock, "rb")).get("package", ()):
    if not applies(package):
        continue
    name = norm(package["name"])
    registry = "registry" in package.get("source", {})
    versions.setdefault(name, set()).add(package.get("version") if registry else None)
for name in sorted(wanted - {norm(project)}):
    found = versions.get(name, set())
    if len(found) == 1 and None not in found:
        print(f"{name}=={found.pop()}")
PY
}

fingerprint() {
    {
        echo "$P_NAME $P_VERSION $P_EXTRAS $P_GROUPS ${P_MORE[*]} lock-pins-v2"
        "$PYTHON" -c 'import sys; print(sys.version)'
        cat "$ROOT/pyproject.toml"
    } | sha256sum | cut -c1-16
}

# Download + unpack the sdist, create the venv, install everything. Cached: done again only
# when the pin, the dependency lists, the interpreter or our pyproject.toml change.
prepare() {
    local stamp="$P_VENV/.telemetryflow-peer-ready" want
    mkdir -p "$P_HOME"
    want="$(fingerprint)"
    if [[ ${TELEMETRYFLOW_PEER_REBUILD:-0} != 1 && -f $stamp && $(cat "$stamp") == "$want" \
          && -d $P_SRC ]]; then
        log "$P_NAME $P_VERSION: cached venv $P_VENV"
        return 0
    fi
    if [[ ! -d $P_SRC ]]; then
        local sdists="$P_HOME/sdist"
        mkdir -p "$sdists"
        if ! compgen -G "$sdists/*.tar.gz" >/dev/null; then
            log "$P_NAME $P_VERSION: downloading the sdist"
            # --no-binary for the project only: its build backend may come as a wheel
            # (--no-binary :all: builds hatchling/flit from source too, minutes longer).
            "$PYTHON" -m pip download -q --no-deps --no-binary "$P_NAME" \
                -d "$sdists" "$P_NAME==$P_VERSION" 2> >(grep -v 'is ignored: it is neither' >&2) \
                || die "$P_NAME: cannot download the sdist of $P_VERSION"
        fi
        local tarball
        tarball="$(compgen -G "$sdists/*.tar.gz" | head -n1)"
        mkdir -p "$P_HOME/src"
        tar -xzf "$tarball" -C "$P_HOME/src" || die "$P_NAME: cannot unpack $tarball"
        # The archive's top folder may be spelled differently (Flask-3.1.3, flask-3.1.3).
        local top
        top="$(tar -tzf "$tarball" | head -n1 | cut -d/ -f1)"
        [[ "$P_HOME/src/$top" == "$P_SRC" ]] || mv "$P_HOME/src/$top" "$P_SRC" \
            || die "$P_NAME: cannot move $top into place"
    fi
    compgen -G "$P_SRC/test*/*.py" >/dev/null \
        || die "$P_NAME $P_VERSION: the sdist ships no tests; pick a version whose sdist does"

    log "$P_NAME $P_VERSION: creating $P_VENV"
    rm -rf "$P_VENV"
    "$PYTHON" -m venv "$P_VENV" || die "$P_NAME: cannot create the venv $P_VENV"
    local reqs=()
    local listed
    listed="$(group_requirements "$P_SRC/pyproject.toml" "$P_NAME" "$P_GROUPS")" \
        || die "$P_NAME: cannot read its test dependencies from pyproject.toml"
    [[ -z $listed ]] || mapfile -t reqs <<<"$listed"
    local constraints="$P_HOME/constraints.txt"
    lock_constraints "$P_SRC/pyproject.toml" "$P_SRC/uv.lock" "$P_NAME" "$P_GROUPS" \
        "${P_MORE[@]}" >"$constraints" || die "$P_NAME: cannot read its uv.lock"
    log "$P_NAME: installing telemetryflow-bootstrap (editable, $ROOT), $P_NAME from its sdist" \
        "[$P_EXTRAS] and: ${reqs[*]} ${P_MORE[*]}; pinned from uv.lock:" \
        "$(tr '\n' ' ' <"$constraints")"
    "$P_VENV/bin/python" -m pip install -q -c "$constraints" -e "$ROOT" "${P_SRC}[$P_EXTRAS]" \
        "${reqs[@]}" "${P_MORE[@]}" 2> >(grep -v 'is ignored: it is neither' >&2) \
        || die "$P_NAME: installing the test dependencies failed"
    local got
    got="$("$P_VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$P_NAME'))")"
    [[ $got == "$P_VERSION" ]] || die "$P_NAME: installed $got, expected $P_VERSION"
    echo "$want" >"$stamp"
}

# The environment every run starts from: none of the caller's telemetry configuration, no
# PYTHONPATH, the project's venv first on PATH.
clean_env() {
    local var
    for var in $(compgen -e); do
        case "$var" in
        TELEMETRYFLOW_PEER_*) ;;
        TELEMETRYFLOW_* | OTEL_* | _TELEMETRYFLOW_*) unset "$var" ;;
        esac
    done
    unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTEST_ADDOPTS PYTEST_PLUGINS
    export VIRTUAL_ENV="$P_VENV" PATH="$P_VENV/bin:$PATH" PYTHONDONTWRITEBYTECODE=1
}

# Before trusting "no regression": under the launcher, in the project's venv, the hook must
# start the SDK and patch the project's module on import. Uses a few internals of the
# package; a change there shows as "unknown", not as a pass.
PREFLIGHT_PY='
import importlib, sys
name = sys.argv[1]
importlib.import_module(name)
hook = getattr(sys.modules.get("sitecustomize"), "__file__", None)
try:
    from telemetryflow_bootstrap import _runtime
    active = _runtime.current_client() is not None
except Exception as exc:
    active = "unknown (%s: %s)" % (type(exc).__name__, exc)
try:
    from telemetryflow_bootstrap.instrumentation import registry
    applied = sorted(n for n, (state, _) in registry.status().items() if state == "applied")
except Exception as exc:
    applied = "unknown (%s: %s)" % (type(exc).__name__, exc)
print("hook=%s sdk_started=%s applied=%s" % (hook, active, applied))
'

preflight() {
    local out
    out="$( (
        clean_env
        export TELEMETRYFLOW_EXPORTER=none
        cd "$P_SRC"
        "$P_VENV/bin/telemetryflow-run" "$P_VENV/bin/python" -W ignore -c "$PREFLIGHT_PY" "$P_NAME"
    ) 2>&1)" || die "$P_NAME: the launcher cannot run python in $P_VENV: $out"
    log "$P_NAME: under the launcher: $(tail -n1 <<<"$out")"
    [[ $out == *"sdk_started=True"* ]] \
        || die "$P_NAME: the launcher did not start instrumentation; launched runs would prove nothing"
    [[ $out == *"'$P_NAME'"* ]] \
        || log "$P_NAME: warning: no instrumentation named '$P_NAME' was applied on import"
}

# run LABEL [pytest args...]: one pytest run, bare or launched per LABEL; records
# "LABEL<TAB>exit<TAB>seconds" in runs.tsv.
run_suite() {
    local label="$1"
    shift
    local xml="$P_RESULTS/$label.xml" out="$P_RESULTS/$label.log" start code=0
    local -a launch=() extra=()
    if [[ -n ${TELEMETRYFLOW_PEER_PYTEST_ARGS:-} ]]; then  # split like a shell would
        mapfile -t extra < <("$PYTHON" -c 'import shlex, sys; print("\n".join(shlex.split(sys.argv[1])))' \
            "$TELEMETRYFLOW_PEER_PYTEST_ARGS")
    fi
    rm -f "$xml"
    start=$(date +%s)
    log "$P_NAME: $label run ..."
    (
        clean_env
        case "$label" in
        bare*) ;;
        launched-none*)
            export TELEMETRYFLOW_EXPORTER=none
            launch=("$P_VENV/bin/telemetryflow-run") ;;
        launched-otlp*)
            # A closed port: exports fail fast and the process must still behave.
            export TELEMETRYFLOW_ENDPOINT=127.0.0.1:9 TELEMETRYFLOW_INSECURE=true \
                TELEMETRYFLOW_SHUTDOWN_TIMEOUT=1
            launch=("$P_VENV/bin/telemetryflow-run") ;;
        esac
        # The attribution re-run: everything the same but no trace-context headers.
        [[ $label == *-nopropagation ]] && export TELEMETRYFLOW_PROPAGATORS=none
        export TELEMETRYFLOW_SERVICE_NAME="peer-$P_NAME"
        cd "$P_SRC"
        exec timeout -k 30 "$SUITE_TIMEOUT" "${launch[@]}" "$P_VENV/bin/python" -m pytest \
            -q -p no:cacheprovider -o junit_family=xunit1 --junitxml="$xml" \
            --allow-hosts="$ALLOW_HOSTS" --timeout="$TEST_TIMEOUT" \
            "${extra[@]}" "$@"
    ) >"$out" 2>&1 </dev/null || code=$?
    local seconds=$(($(date +%s) - start))
    printf '%s\t%s\t%s\n' "$label" "$code" "$seconds" >>"$P_RESULTS/runs.tsv"
    local tail_line
    tail_line="$(grep -E '(passed|failed|error|no tests ran)' "$out" | tail -n1 || true)"
    log "$P_NAME: $label exit $code in ${seconds}s: ${tail_line:-see $out}"
    [[ $code == 124 || $code == 137 ]] && log "$P_NAME: $label hit the ${SUITE_TIMEOUT}s timeout"
    return 0
}

run_project() {
    project_setup "$1"
    prepare
    preflight
    rm -rf "$P_RESULTS"
    mkdir -p "$P_RESULTS"
    local t0 mode code=0
    t0=$(date +%s)
    run_suite bare "${P_SELECT[@]}"
    local -a launched=()
    for mode in $MODES; do
        run_suite "launched-$mode" "${P_SELECT[@]}"
        launched+=("launched-$mode=$P_RESULTS/launched-$mode.xml")
    done
    [[ -f $P_RESULTS/bare.xml ]] || {
        log "$P_NAME: the bare run left no JUnit XML; see $P_RESULTS/bare.log"
        return 2
    }

    local -a reruns=()
    if [[ $RERUN == 1 ]]; then
        local ids="$P_RESULTS/regressed.txt"
        "$PYTHON" "$COMPARE" --project "$P_NAME" --ids-out "$ids" \
            "bare=$P_RESULTS/bare.xml" "${launched[@]}" >/dev/null || true
        local n
        n=0
        [[ -f $ids ]] && n=$(wc -l <"$ids")
        if ((n > 0 && n <= 200)); then
            local -a nodeids=()
            mapfile -t nodeids <"$ids"
            log "$P_NAME: re-running the $n regressed test(s): as they were (flaky?) and" \
                "with TELEMETRYFLOW_PROPAGATORS=none (the traceparent header?)"
            for mode in $MODES; do
                run_suite "launched-$mode-rerun" "${nodeids[@]}"
                reruns+=(--rerun "launched-$mode=$P_RESULTS/launched-$mode-rerun.xml")
                run_suite "launched-$mode-nopropagation" "${nodeids[@]}"
                reruns+=(--attribute
                    "launched-$mode=$P_RESULTS/launched-$mode-nopropagation.xml")
            done
        elif ((n > 200)); then
            log "$P_NAME: $n regressed tests; not re-running them"
        fi
    fi

    local -a allow=()
    [[ $ALLOW_PROPAGATION == 1 ]] && allow=(--allow-propagation)
    "$PYTHON" "$COMPARE" --project "$P_NAME $P_VERSION" --runs "$P_RESULTS/runs.tsv" --markdown \
        "${allow[@]}" \
        "${reruns[@]}" "bare=$P_RESULTS/bare.xml" "${launched[@]}" \
        | tee "$P_RESULTS/compare.txt" || code=$?
    log "$P_NAME: done in $(($(date +%s) - t0))s (tests only); logs and XML in $P_RESULTS"
    return "$code"
}

main() {
    local -a projects=()
    local arg
    [[ $# -eq 0 ]] && set -- all
    for arg in "$@"; do
        case "$arg" in
        -h | --help) usage; exit 0 ;;
        all) projects+=("${ALL_PROJECTS[@]}") ;;
        requests | flask | urllib3) projects+=("$arg") ;;
        *) usage >&2; die "unknown project '$arg'" ;;
        esac
    done
    mkdir -p "$PEER_DIR"
    local status=0 project code started summary=""
    started=$(date +%s)
    for project in "${projects[@]}"; do
        code=0
        # One runner per project at a time (venv setup and result files are shared).
        exec 9>"$PEER_DIR/.lock-$project"
        flock 9
        # A subshell: a setup failure (die) ends this project only.
        (run_project "$project") || code=$?
        flock -u 9
        case $code in
        0) summary+="  $project: OK"$'\n' ;;
        1) summary+="  $project: REGRESSIONS"$'\n'; ((status < 1)) && status=1 ;;
        *) summary+="  $project: NOT COMPARED (setup or bare run failed)"$'\n'; status=2 ;;
        esac
    done
    printf '\n== peer suites: %ss in all\n%s' "$(($(date +%s) - started))" "$summary"
    exit "$status"
}

main "$@"
