#!/usr/bin/env bash
# Unpacks DALI's parts (../shared/gpu/pack-dali: an xz tar, split) into DEST, once. It unpacks into
# DEST.partial and renames that when the whole stream went through, so a run cut while unpacking
# unpacks again next time instead of importing half a DALI; with SHA256_FILE (pack-dali's
# .gpu/SHA256) parts that are missing or cut short are refused before anything is unpacked.
#   bash benchmarks/unpack_dali.sh PARTS_DIR DEST [SHA256_FILE]
set -euo pipefail
parts=$1 dest=$2 sum=${3:-}
[ -d "$dest" ] && exit 0
compgen -G "$parts/part-*" > /dev/null || { echo "no DALI parts in $parts: send them (../shared/gpu/README.md)" >&2; exit 1; }
if [ -n "$sum" ] && [ -f "$sum" ]; then
  got=$(cat "$parts"/part-* | sha256sum | cut -d' ' -f1)
  [ "$got" = "$(cat "$sum")" ] || { echo "DALI's parts are not whole (sha256 $got, expected $(cat "$sum")): send them again" >&2; exit 1; }
fi
rm -rf "$dest.partial"
mkdir -p "$dest.partial"
cat "$parts"/part-* | xz -dc -T0 | tar -x -C "$dest.partial"
mv "$dest.partial" "$dest"
