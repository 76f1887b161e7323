#!/bin/sh
# Builds a release: a copy of public/ in $1/<id>, where <id> is a hash of
# the content, so the same content always gives the same release. Prints <id>.
set -eu
out="$1"
mkdir -p "$out"
id=$(find public -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12)
if [ ! -d "$out/$id" ]; then
  rm -rf "$out/$id.tmp"
  mkdir -p "$out/$id.tmp"
  cp -R public/. "$out/$id.tmp/"
  mv "$out/$id.tmp" "$out/$id"
fi
echo "$id"
