#!/usr/bin/env bash
# clang-tidy with the checks of .clang-tidy as errors, over the project's own translation units (or the files
# given as arguments), using the compile commands of ${TIDY_BUILD_DIR:-build}. Headers are checked through
# the sources that include them (HeaderFilterRegex). Runs nproc files at a time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BUILD="${TIDY_BUILD_DIR:-build}"
[ -f "$BUILD/compile_commands.json" ] || { echo "check-tidy: no $BUILD/compile_commands.json (build first)"; exit 1; }
if [ $# -gt 0 ]; then
  files=("$@")
else
  # Every project source in the compile database (generated protobuf code under the build dir excluded).
  mapfile -t files < <(python3 -c "
import json, os, sys
root = os.path.realpath('.')
seen = set()
for e in json.load(open('$BUILD/compile_commands.json')):
    f = os.path.realpath(os.path.join(e['directory'], e['file']))
    rel = os.path.relpath(f, root)
    if rel.startswith('..') or rel.split('/')[0].startswith('build') or f in seen:
        continue
    seen.add(f)
    print(rel)
" | sort)
fi
log="$(mktemp)"
status=0
printf '%s\n' "${files[@]}" | xargs -P"$(nproc)" -n4 clang-tidy -p "$BUILD" --quiet >"$log" 2>&1 || status=$?
grep -E "(error|warning): " "$log" | sort -u || true
rm -f "$log"
if [ $status -ne 0 ]; then
  echo "check-tidy: FAILED"
  exit 1
fi
echo "check-tidy: ${#files[@]} files clean"
