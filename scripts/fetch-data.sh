#!/usr/bin/env bash
# `make data`: fetches every catalogued dataset/tokenizer file that the data directory lacks, from its
# official source (the list is `dpft data sources`), and checks SHA-256 where the source is pinned.
# Files already present are left alone. Without a network it says, per file, where to get it by hand.
#
#   DPFT_DATA_DIR   target folder (default: data/ in the repository)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dpft="$root/target/debug/dpft"
data=${DPFT_DATA_DIR:-$root/data}
mkdir -p "$data/.downloads"
say() { printf '[data] %s\n' "$*"; }

offline=0
fetch() { # url dest — after one connection failure, stop trying (an offline machine should not wait per file)
  [ "$offline" -eq 0 ] || return 1
  if curl -fsSL --retry 2 --connect-timeout 15 --max-time 1800 -o "$2.part" "$1"; then
    mv "$2.part" "$2"
  else
    local rc=$?
    rm -f "$2.part"
    # 6: could not resolve host, 7: could not connect, 28: timeout
    case $rc in 6|7|28) offline=1; say "no network (curl exit $rc): listing what is missing instead of fetching" ;; esac
    return 1
  fi
}

missing=0 fetched=0 present=0
while IFS=$'\t' read -r dataset path url member sha; do
  dest="$data/$path"
  if [ -f "$dest" ]; then present=$((present + 1)); continue; fi
  mkdir -p "$(dirname "$dest")"
  if [ "$member" = "-" ]; then
    [ "$offline" -eq 1 ] || say "fetching $path from $url"
    fetch "$url" "$dest" || { say "could not fetch $url: copy it to $dest by hand"; rm -f "$dest.part"; missing=$((missing + 1)); continue; }
  else
    archive="$data/.downloads/$(basename "$url")"
    if [ ! -f "$archive" ]; then
      [ "$offline" -eq 1 ] || say "fetching $(basename "$url") from $url"
      fetch "$url" "$archive" || { say "could not fetch $url: put $member from it at $dest by hand"; rm -f "$archive.part"; missing=$((missing + 1)); continue; }
    fi
    unzip -p "$archive" "$member" >"$dest.part" && mv "$dest.part" "$dest" \
      || { say "$member not found in $archive"; rm -f "$dest.part"; missing=$((missing + 1)); continue; }
  fi
  if [ "$sha" != "-" ]; then
    got=$(sha256sum "$dest" | cut -d' ' -f1)
    if [ "$got" != "$sha" ]; then
      mv "$dest" "$dest.bad-checksum"
      say "checksum mismatch for $path (got $got, expected $sha); kept as $dest.bad-checksum"
      missing=$((missing + 1)); continue
    fi
  fi
  say "ok $path ($dataset)"
  fetched=$((fetched + 1))
done < <("$dpft" data sources --tsv)

say "data directory $data: $present already present, $fetched fetched, $missing missing"
say "\`dpft data status --data-dir $data\` shows what is there; \`dpft data sources\` where each file comes from."
[ "$missing" -eq 0 ]
