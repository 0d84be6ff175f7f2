#!/usr/bin/env bash
# Refresh the vendored D3 from npm (run by hand; the build never touches the network).
# Usage: web_template/vendor/refresh.sh [VERSION]   (default: the pinned 7.9.0)
set -euo pipefail
version="${1:-7.9.0}"
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "d3@${version}" >/dev/null && tar xzf "d3-${version}.tgz")
cp "$tmp/package/dist/d3.min.js" "$tmp/package/LICENSE" "$here/d3/"
echo "$version" > "$here/d3/VERSION"
echo "d3 ${version}: $(wc -c < "$here/d3/d3.min.js") bytes in $here/d3"
