#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the repository's fixtures (generated, not committed):
# every layout target gets every fixture image; each share target gets the fixtures of its
# type. Run from anywhere.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
fixtures="$here/../tests/fixtures/libmembus-2.1"
for t in layout_ring layout_kv layout_media layout_pthread; do
  mkdir -p "$here/corpus/$t"
  cp "$fixtures"/*.bin "$here/corpus/$t/"
done
for ty in memmsg memcmd memkv memvid memaud mempkt; do
  mkdir -p "$here/corpus/share_$ty"
  cp "$fixtures/$ty"_*.bin "$here/corpus/share_$ty/"
done
echo "corpus seeded in $here/corpus"
