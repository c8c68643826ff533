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

fetch() { # url dest
  curl -fsSL --retry 2 --connect-timeout 20 --max-time 1800 -o "$2.part" "$1" && mv "$2.part" "$2"
}

missing=0 fetched=0 present=0
while IFS=$'\t' read -r dataset path url member sha; do
  dest="$data/$path"
  if [ -f "$dest" ]; then present=$((present + 1)); continue; fi
  mkdir -p "$(dirname "$dest")"
  if [ "$member" = "-" ]; then
    say "fetching $path from $url"
    fetch "$url" "$dest" || { say "could not fetch $url: copy it to $dest by hand"; rm -f "$dest.part"; missing=$((missing + 1)); continue; }
  else
    archive="$data/.downloads/$(basename "$url")"
    if [ ! -f "$archive" ]; then
      say "fetching $(basename "$url") from $url"
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
say "labelled GLUE subsets for miniature runs and the DART test references are not in the catalogue's official"
say "releases; see docs of each task for them. \`dpft data status --data-dir $data\` shows what is there."
[ "$missing" -eq 0 ]
