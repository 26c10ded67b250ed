#!/usr/bin/env bash
# The whole test suite: type check, lint, build, docker-compose.yml check, local real services (Kafka,
# S3, Redis, DynamoDB), then every vitest suite with those services required. Prints a closing
# "N passed, N failed" line and exits non-zero on any failure. RECON_SKIP_SERVICES=1 runs without them
# (the tests that need them are then skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
status=0
step() { echo "== $*"; "$@" || status=1; }
step npx tsc -p tsconfig.json --noEmit
step npx biome check .
step npm run --silent build
step bash scripts/check-compose.sh
if [ "${RECON_SKIP_SERVICES:-0}" != 1 ]; then
  trap 'bash scripts/services.sh down' EXIT
  if bash scripts/services.sh up; then
    set -a
    # shellcheck disable=SC1091
    . .services/env
    set +a
  else
    echo "local services failed to start"
    status=1
  fi
fi
rm -f .cache/vitest.json
npx vitest run --reporter=default --reporter=json --outputFile=.cache/vitest.json || status=1
if [ -f .cache/vitest.json ]; then
  node -e '
    const r = JSON.parse(require("fs").readFileSync(".cache/vitest.json", "utf8"));
    console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
    if (r.numTotalTests === 0) process.exit(1);
  ' || status=1
else
  echo "tests: 0 passed, 1 failed"
  status=1
fi
exit $status
