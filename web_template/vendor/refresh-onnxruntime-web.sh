#!/usr/bin/env bash
# Refresh the vendored ONNX Runtime Web from npm (run by hand; the build never touches the network).
# Keeps only what the live panel needs: the wasm-only classic script (global `ort`), its single-thread SIMD
# loader and wasm binary (stored gzipped: the build ships it as a base64 classic-script twin).
# Usage: web_template/vendor/refresh-onnxruntime-web.sh [VERSION]   (default: the pinned 1.30.0)
set -euo pipefail
version="${1:-1.30.0}"
here="$(cd "$(dirname "$0")" && pwd)/onnxruntime-web"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "onnxruntime-web@${version}" >/dev/null && tar xzf "onnxruntime-web-${version}.tgz")
dist="$tmp/package/dist"
mkdir -p "$here"
rm -f "$here"/*
cp "$dist/ort.wasm.min.js" "$dist/ort-wasm-simd-threaded.mjs" "$here/"
gzip -9 -n -c "$dist/ort-wasm-simd-threaded.wasm" > "$here/ort-wasm-simd-threaded.wasm.gz"
license="$(node -p "require('$tmp/package/package.json').license")"
[ "$license" = "MIT" ] || { echo "onnxruntime-web ${version} is licensed $license, not MIT: check before vendoring" >&2; exit 1; }
# The npm package has no LICENSE file; its files carry "Copyright (c) Microsoft Corporation ... MIT License".
cat > "$here/LICENSE" <<'MIT'
MIT License

Copyright (c) Microsoft Corporation.

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
MIT
echo "$version" > "$here/VERSION"
echo "onnxruntime-web ${version}: $(du -sb "$here" | cut -f1) bytes in $here"
