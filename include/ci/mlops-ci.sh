#!/usr/bin/env bash
# The MLOps checks of this Airflow project, stage by stage, for any CI (GitLab CI, Jenkins, a
# GitHub Actions step) or a shell. Written by `python -m mlops_provider init` as ci/mlops-ci.sh.
#
# Usage: ci/mlops-ci.sh [stage ...]     (no stage: all of them, in this order)
#   install    uv sync --frozen: the project's locked environment in .venv (needs uv, a
#              pyproject.toml depending on airflow-provider-mlops with pytest and ruff in its dev
#              group, and its uv.lock)
#   lint       ruff check dags include tests (the project's ruff configuration; without one,
#              the baseline rules E4,E7,E9,F: pyflakes and pycodestyle's errors)
#   integrity  the DAG integrity checks      (pytest -m mlops_integrity)
#   data       the data checks               (pytest -m mlops_data)
#   training   a small training run          (pytest -m mlops_training)
#   run        a run of the sample DAGs      (pytest -m mlops_run)
#
# Settings (environment variables):
#   PYTHON            an interpreter to use as it is (the install stage is then skipped); default:
#                     the project's .venv/bin/python ($UV_PROJECT_ENVIRONMENT/bin/python if set)
#   MLOPS_CI_REPORTS  the directory of the HTML reports (default: reports)
#   MLOPS_CI_TESTS    the test file of the checks (default: tests/test_mlops_ci.py)
# Relative paths are relative to the project root (the parent of this script's directory),
# where the script runs whatever the current directory.
#
# Exit status: 0 when every stage passed, 1 when a stage failed, 2 on a usage error.
set -euo pipefail

ALL_STAGES="install lint integrity data training run"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON_GIVEN="${PYTHON:-}"
REPORTS="${MLOPS_CI_REPORTS:-reports}"
TESTS="${MLOPS_CI_TESTS:-tests/test_mlops_ci.py}"
VENV="${UV_PROJECT_ENVIRONMENT:-.venv}"
BASELINE_RULES="E4,E7,E9,F"

usage() {
    echo "usage: ci/mlops-ci.sh [stage ...]  (stages: $ALL_STAGES; default: all, in that order)"
    echo "settings: PYTHON (an interpreter to use as is), MLOPS_CI_REPORTS (default reports),"
    echo "          MLOPS_CI_TESTS (default tests/test_mlops_ci.py)"
}

error() {
    echo "mlops-ci: error: $*" >&2
}

# The interpreter of the checks: $PYTHON, else the environment the install stage made.
python_bin() {
    if [[ -n "$PYTHON_GIVEN" ]]; then
        if ! command -v "$PYTHON_GIVEN" >/dev/null 2>&1; then
            error "PYTHON=$PYTHON_GIVEN is not an executable"
            return 1
        fi
        echo "$PYTHON_GIVEN"
    elif [[ -x "$VENV/bin/python" ]]; then
        echo "$VENV/bin/python"
    else
        error "no $VENV/bin/python in $ROOT: run the install stage first (ci/mlops-ci.sh install)" \
            "or set PYTHON to an interpreter that has airflow-provider-mlops, pytest and ruff"
        return 1
    fi
}

stage_install() {
    if [[ -n "$PYTHON_GIVEN" ]]; then
        echo "PYTHON=$PYTHON_GIVEN is used as it is: nothing to install"
        return 0
    fi
    if [[ ! -f uv.lock ]]; then
        error "no uv.lock in $ROOT. The install stage installs the project's locked" \
            "environment: give the project a pyproject.toml that depends on" \
            "airflow-provider-mlops (with pytest and ruff in its dev group), run \`uv lock\` and" \
            "commit uv.lock. Or set PYTHON to an interpreter that has them (nothing is installed" \
            "then)."
        return 1
    fi
    if ! command -v uv >/dev/null 2>&1; then
        error "uv is not on PATH: install it (e.g. \`pipx install uv\`, or see" \
            "https://docs.astral.sh/uv/getting-started/installation/). Or set PYTHON to an" \
            "interpreter that has airflow-provider-mlops, pytest and ruff (nothing is installed" \
            "then)."
        return 1
    fi
    uv sync --frozen
}

stage_lint() {
    local python path
    python="$(python_bin)" || return 1
    set --
    for path in dags include tests; do
        if [[ -e "$path" ]]; then
            set -- "$@" "$path"
        fi
    done
    if [[ $# -eq 0 ]]; then
        error "nothing to lint: $ROOT has none of dags/, include/, tests/"
        return 1
    fi
    # Without a ruff configuration (ruff reports no settings path), ruff's defaults apply: from
    # ruff 0.15 on, hundreds of rules, some for a newer Python than the provider's DAGs support.
    # The stage then checks the classic baseline, pyflakes and pycodestyle's errors.
    local settings
    settings="$("$python" -m ruff check --show-settings "$@" 2>/dev/null)" || true
    if [[ "$settings" == *"Settings path:"* ]]; then
        "$python" -m ruff check "$@"
    else
        echo "no ruff configuration (pyproject.toml [tool.ruff] or ruff.toml): checking the" \
            "baseline rules $BASELINE_RULES; configure ruff to choose the project's rules"
        "$python" -m ruff check --select "$BASELINE_RULES" "$@"
    fi
}

# integrity, data, training, run: the tests of the checks file marked mlops_<stage>.
stage_checks() {
    local stage="$1" marker="mlops_$1" python status=0
    python="$(python_bin)" || return 1
    if [[ ! -f "$TESTS" ]]; then
        error "the test file $TESTS is missing from $ROOT: \`python -m mlops_provider init .\`" \
            "writes tests/test_mlops_ci.py (or set MLOPS_CI_TESTS to yours)"
        return 1
    fi
    mkdir -p "$REPORTS"
    "$python" -m pytest "$TESTS" --mlops --mlops-reports "$REPORTS" -m "$marker" || status=$?
    if [[ $status -eq 5 ]]; then
        error "no test marked $marker was collected from $TESTS: the $stage stage checked nothing"
        return 1
    fi
    return "$status"
}

run_stage() {
    local stage="$1" started=$SECONDS status=0
    echo "==> $stage: started"
    case "$stage" in
        install) stage_install || status=$? ;;
        lint) stage_lint || status=$? ;;
        *) stage_checks "$stage" || status=$? ;;
    esac
    local took=$((SECONDS - started))
    if [[ $status -eq 0 ]]; then
        echo "==> $stage: passed (${took}s)"
    else
        echo "==> $stage: failed (${took}s, exit status $status)"
    fi
    return "$status"
}

main() {
    local stage passed=0 failed=0 skipped=0 summary="" failures="" started=$SECONDS
    if [[ $# -eq 0 ]]; then
        # shellcheck disable=SC2086 # the stage names are words
        set -- $ALL_STAGES
    fi
    for stage in "$@"; do
        case "$stage" in
            -h | --help)
                usage
                exit 0
                ;;
        esac
        case " $ALL_STAGES " in
            *" $stage "*) ;;
            *)
                error "unknown stage '$stage'"
                usage >&2
                exit 2
                ;;
        esac
    done
    cd "$ROOT"
    for stage in "$@"; do
        if [[ " $failures " == *" install "* ]]; then
            summary+="$(printf '  %-10s skipped (install failed)' "$stage")"$'\n'
            skipped=$((skipped + 1))
            continue
        fi
        local began=$SECONDS
        if run_stage "$stage"; then
            summary+="$(printf '  %-10s passed  %5ss' "$stage" $((SECONDS - began)))"$'\n'
            passed=$((passed + 1))
        else
            summary+="$(printf '  %-10s failed  %5ss' "$stage" $((SECONDS - began)))"$'\n'
            failed=$((failed + 1))
            failures+=" $stage"
        fi
    done
    echo
    echo "==> summary ($((SECONDS - started))s):"
    printf '%s' "$summary"
    if [[ $failed -gt 0 ]]; then
        echo "mlops-ci: $failed stage(s) failed:$failures ($passed passed, $skipped skipped)"
        return 1
    fi
    echo "mlops-ci: all $passed stage(s) passed"
}

main "$@"
