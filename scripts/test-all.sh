#!/usr/bin/env bash
# The whole test suite: type check, lint, build, then every vitest suite. Prints a closing
# "N passed, N failed" line and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
status=0
step() { echo "== $*"; "$@" || status=1; }
step npx tsc -p tsconfig.json --noEmit
step npx biome check .
step npm run --silent build
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
