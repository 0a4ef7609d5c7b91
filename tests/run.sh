#!/usr/bin/env bash
# Run a test suite the way CI does:  tests/run.sh all|unit|integration|bench [pytest args]
#   unit         the pure parts (config, roster, GPU choice, course sync, build tools); no Docker
#   integration  deploys a test instance through the playbooks and drives it, plus each image's tests
#   all          unit, then integration
#   bench        deploys a bench instance and prints spawn, burst, memory and size figures
#   bench-swarm  the swarm figures alone (three test nodes beside one)
# Whatever the suites need and the machine lacks (Chromium for the browser test) is installed here;
# the deploy itself installs and starts Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
suite=${1:-all}
shift || true

ensure_chromium() {
  if ! command -v chromium >/dev/null 2>&1; then
    echo "tests/run.sh: installing Chromium for the browser test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
}

case "$suite" in
  unit)
    exec $PY -m pytest tests/unit "$@" ;;
  integration)
    ensure_chromium
    exec $PY -m pytest images hub/tests tests/integration tests/swarm "$@" ;;
  all)
    ensure_chromium
    exec $PY -m pytest "$@" ;;
  bench)
    exec $PY -m tests.bench.bench "$@" ;;
  bench-swarm)
    exec $PY -m tests.bench.swarm_bench "$@" ;;
  *)
    echo "usage: tests/run.sh all|unit|integration|bench|bench-swarm [pytest args]" >&2
    exit 2 ;;
esac
