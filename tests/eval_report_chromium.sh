#!/usr/bin/env bash
# Renders a report.html (made by test_eval_metrics DIR from a synthetic
# evaluation) in headless Chromium and checks the screenshot is not blank
# and the SVG charts are in the page. Usage: eval_report_chromium.sh TEST_BIN
set -euo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" "$work"
html=$work/report.html
for id in heatmap-task-heads heatmap-ridge lines-til lines-cil per-task keep-curve; do
  grep -q "<svg id=\"$id\"" "$html" || { echo "FAIL: chart $id missing from $html"; exit 1; }
done
if grep -qi "<script" "$html"; then echo "FAIL: the report must not need scripts"; exit 1; fi
command -v chromium >/dev/null || { echo "FAIL: chromium not installed (scripts/install-deps.sh)"; exit 1; }
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --screenshot="$work/out.png" --window-size=1200,1600 \
  "file://$html" >"$work/chromium.log" 2>&1 || { cat "$work/chromium.log"; exit 1; }
"${SOTU_PYTHON:-/usr/bin/python3}" - "$work/out.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w, h, ctype = 8, b"", 0, 0, 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        assert depth == 8, "bit depth %d" % depth
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
bpp = {2: 3, 6: 4}[ctype]
raw = zlib.decompress(idat)
stride = w * bpp
prev = bytearray(stride)
colours, dark = set(), 0
for y in range(h):
    f = raw[y * (stride + 1)]
    line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    if y % 4 == 0:
        for x in range(0, w, 4):
            px = bytes(line[x * bpp:x * bpp + 3])
            colours.add(px)
            dark += sum(px) < 200
print("screenshot %dx%d: %d distinct colours, %d dark samples" % (w, h, len(colours), dark))
assert len(colours) >= 20, "the screenshot looks blank"
assert dark >= 200, "hardly any dark pixels: text and charts did not render"
PY
echo "report renders: ok"
