# Helpers of the tests/node scripts: the sotu binary, a Python for reading
# JSON (the standard library's json only), a work directory, fail.
: "${SOTU_BIN:?SOTU_BIN is not set}"
py=${SOTU_PYTHON:-/usr/bin/python3}
work=$(mktemp -d "${TMPDIR:-/tmp}/sotu-node.XXXXXX")
trap 'rm -rf "$work"' EXIT
export OMPI_MCA_rmaps_base_oversubscribe=1
fail() { echo "FAIL: $*"; exit 1; }

# json FILE KEY.KEY... : one value of a JSON file ("" for null), ranks.0.core style
json() {
  "$py" -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    d = d[int(k)] if isinstance(d, list) else d[k]
print("" if d is None else (str(d).lower() if isinstance(d, bool) else d))' "$1" "$2"
}
