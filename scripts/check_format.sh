#!/usr/bin/env bash
# The formatting check: every C++ source of ours is as clang-format (.clang-format) writes it.
#   scripts/check_format.sh         lists each file that differs and exits 1; 0 when all agree
#   scripts/check_format.sh --fix   rewrites them in place
# Debian's clang-format (installed by scripts/setup.sh) is the reference formatter.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
command -v clang-format >/dev/null 2>&1 || { echo "check_format: clang-format is not installed (scripts/setup.sh installs it)" >&2; exit 2; }
folders=(ir formats runtime-check calibration passes compressor tests bench)
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard -- "${folders[@]}" |
    grep -E '\.(h|hpp|cpp|cc|inc)$' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
else
  mapfile -t files < <(find "${folders[@]}" -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.cpp' -o -name '*.cc' -o -name '*.inc' \) | sort)
fi
if [ "${1:-}" = "--fix" ]; then
  clang-format -i --style=file "${files[@]}"
  echo "check_format: formatted ${#files[@]} files"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  clang-format --style=file --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  for f in "${bad[@]}"; do echo "check_format: $f differs from clang-format (.clang-format)" >&2; done
  echo "check_format: ${#bad[@]} of ${#files[@]} files need formatting: scripts/check_format.sh --fix" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files as clang-format writes them ($(clang-format --version | head -n1))"
