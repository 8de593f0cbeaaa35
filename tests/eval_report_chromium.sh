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
# A report to trust (issue 17 item 4): one colour per method in every chart,
# a colour scale on each heat map, task names on the axes, kept values and
# bytes per task, the provenance block and the glossary.
"${SOTU_PYTHON:-/usr/bin/python3}" - "$html" <<'PY'
import re, sys
from html.parser import HTMLParser
html = open(sys.argv[1]).read()
class P(HTMLParser):
    def __init__(self):
        super().__init__()
        self.svg = None
        self.stack = []
        self.strokes = {}      # method -> colours of its lines
        self.fills = {}        # method (per-task bars) -> colours
        self.legend = {}       # legend label -> colour, per chart
        self.scales = set()
        self.labels = []
        self.text = None
        self.ids = set()
        self.pending = None
    def handle_starttag(self, tag, a):
        a = dict(a)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "svg":
            self.svg = a.get("id")
        if tag == "polyline" and a.get("data-method"):
            self.strokes.setdefault(a["data-method"], set()).add(a["stroke"])
        if tag == "g" and a.get("class") == "color-scale":
            self.scales.add(self.svg)
        if tag == "line" and self.svg and a.get("stroke-width") == "3":
            self.pending = a["stroke"]
        if tag == "text":
            self.text = (a.get("class"), self.pending)
            self.pending = None if a.get("class") else self.pending
    def handle_data(self, d):
        if self.text is not None:
            cls, colour = self.text
            if cls == "task-label":
                self.labels.append((self.svg, d))
            elif colour:
                self.legend.setdefault(d.strip(), set()).add(colour)
    def handle_endtag(self, tag):
        if tag == "text":
            self.text = None
            self.pending = None
        if tag == "svg":
            self.svg = None
p = P()
p.feed(html)
colours = {"sotu": "#1f77b4", "dense": "#d62728", "frozen": "#2ca02c", "finetuned": "#9467bd"}
for m, c in colours.items():
    got = {col for label, cs in p.legend.items() if label.split()[0] == m for col in cs}
    assert got == {c}, f"method {m}: legend colours {got}, expected only {c}"
for m, cs in p.strokes.items():
    assert cs == {colours[m]}, f"method {m} drawn in {cs}"
bars = re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})"><title>[^<]* (sotu|dense|frozen|finetuned) ', html)
assert bars and all(colours[m] == c for c, m in bars), "per-task bars: a method in another colour"
assert p.scales == {"heatmap-task-heads", "heatmap-ridge"}, f"colour scales: {p.scales}"
for chart in ("heatmap-task-heads", "heatmap-ridge", "per-task"):
    names = {d for svg, d in p.labels if svg == chart}
    assert {"t00-a", "t02-c"} <= names, f"{chart}: task labels {names}"
assert "<th>kept values (keep 0.2)</th><th>bytes shipped</th>" in html
assert "<td>1234</td><td>5001</td>" in html
prov = html[html.index('id="provenance"'):]
for row in ("sotu version", "commit", "command line", "host", "ranks", "threads per rank", "wall time"):
    assert f"<th>{row}</th>" in prov, f"provenance: no {row}"
assert "sotu train cfg&lt;1&gt;.yaml" in prov and "12.5 s" in prov
assert '<details id="config">' in html and "lr: 0.001" in html
gl = html[html.index('id="glossary"'):]
for term in ("ncm_til", "ridge_til", "collision rate", "cosine"):
    assert f"<dt>{term}</dt>" in gl, f"glossary: no {term}"
for cid in ("curve-loss", "curve-lr", "curve-grad-norm"):
    assert cid in p.ids, f"no training curve {cid}"
print("report to trust: colours per method, scales, task names, bytes, provenance, glossary")
PY
command -v chromium >/dev/null || { echo "FAIL: chromium not installed (scripts/install-deps.sh)"; exit 1; }
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --screenshot="$work/out.png" --window-size=1200,3600 \
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
