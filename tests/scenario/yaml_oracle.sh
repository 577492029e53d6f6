#!/bin/sh
# lib/yaml against PyYAML (python3-yaml), the reader Prefect loads
# prefect.yaml with: random documents in block and flow style with every
# kind of YAML 1.1 scalar (booleans in all their spellings, null, octal, hex,
# binary and underscored integers, dotted floats, strings that look like
# numbers, quoted and escaped text, block scalars), anchors, aliases and
# merge keys, read by both and compared value by value and type by type.
# PyYAML's reading is taken as it is except where docs/deployments-file.md
# says pushpool differs: timestamps and sexagesimal numbers (1:30) stay text.
# YAML_SEED=N reproduces a run (YAML_SEED=random draws one); YAML_CASES
# scales it.
set -e
: "${PUSHPOOL:?set PUSHPOOL to the pushpool binary}"
DRIVER=$(dirname "$PUSHPOOL")/tests/yaml_oracle
if [ ! -x "$DRIVER" ]; then
	echo "FAIL: $DRIVER is missing ('make all' builds it)"
	exit 1
fi
SEED=${YAML_SEED:-20261202}
[ "$SEED" = random ] && SEED=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
echo "yaml_oracle: seed $SEED (YAML_SEED=$SEED reproduces this run)"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
/usr/bin/python3 - "$DRIVER" "$SEED" "${YAML_CASES:-600}" "$T" <<'PY'
import json, os, random, re, subprocess, sys
import yaml

driver, seed, cases, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rnd = random.Random(seed)

# PyYAML's safe reader less its timestamp resolver and the sexagesimal
# forms of its int and float resolvers (pushpool keeps those as text).
class Oracle(yaml.SafeLoader):
    pass
Oracle.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in rs if tag != "tag:yaml.org,2002:timestamp"]
    for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
def no_sexagesimal(resolve):
    def wrapped(self, kind, value, implicit):
        if kind is yaml.ScalarNode and implicit[0] and SEXAGESIMAL.match(value):
            return "tag:yaml.org,2002:str"
        return resolve(self, kind, value, implicit)
    return wrapped
Oracle.resolve = no_sexagesimal(yaml.SafeLoader.resolve)

PLAIN = ["yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false",
         "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "y", "n", "~",
         "null", "Null", "NULL", "nil", "0", "7", "12", "-7", "+3", "0755", "09",
         "00", "0_", "0x1F", "0xff_ff", "0b101", "-0b11", "1_000", "0o17", "1.5",
         ".5", "-.5", "+.5", "1.", "-1.25", "1.0e+3", "2.5E-2", "1e3", "1.0e3",
         "6.02_0", "3.10.1", "1:30", "01:00:00", "-1:00", "2024-01-01",
         "2024-01-01T00:00:00Z", "2026-03-29 02:30:00", "abc", "hello world",
         "a:b", "http://x.example/y?z=1", "PT1H", "0 7 * * *", "flows/etl.py:main",
         "ECS", "eu-west-1", "1h", "Europe/Berlin", "x-y_z.1", "é ü", "a # not",
         ".inf_", "nan", "NaN", "infinity", "12abc", "0x", "--", "- x"]
# flow context: no ", [ ] { } :" and no "#" after a space
FLOW_PLAIN = [p for p in PLAIN if not re.search(r"[,\[\]{}:#]|\s-", p) and p != "- x"]
KEYS = ["name", "a", "b", "c", "k1", "work_pool", "job_variables", "x_y", "with space",
        "'quoted key'", "\"dq\"", "'yes'", "'1'", "'<<'", "UPPER", "é"]
TEXT = "ab :#-'\"\\\t/é{}[],*&!|>%@`?"

def squote():
    s = "".join(rnd.choice(TEXT[:-1]) for _ in range(rnd.randint(0, 8))).replace("\t", " ")
    return "'" + s.replace("'", "''") + "'"

def dquote():
    out = []
    for _ in range(rnd.randint(0, 8)):
        c = rnd.choice(TEXT + "\n")
        out.append({"\"": "\\\"", "\\": "\\\\", "\n": "\\n", "\t": "\\t"}.get(c, c))
    if rnd.random() < 0.2:
        out.append(rnd.choice(["\\u00e9", "\\x41", "\\/", "\\0"]))
    return "\"" + "".join(out) + "\""

def scalar(flow):
    r = rnd.random()
    if r < 0.6:
        return rnd.choice(FLOW_PLAIN if flow else PLAIN)
    if r < 0.75:
        return squote()
    if r < 0.9:
        return dquote()
    return rnd.choice(["!!str 12", "!!int '42'", "!!float 3", "!!bool 'yes'", "! 12",
                       "!!null ''", "!!str yes"])

class Doc:
    def __init__(self):
        self.anchors = []  # (name, kind) of finished anchored nodes
        self.n = 0
    def anchor(self):
        self.n += 1
        return "a%d" % self.n

def flow(doc, depth):
    if depth >= 3 or rnd.random() < 0.4:
        return scalar(True)
    if doc.anchors and rnd.random() < 0.15:
        return "*" + rnd.choice(doc.anchors)[0]
    if rnd.random() < 0.5:
        return "[" + ", ".join(flow(doc, depth + 1) for _ in range(rnd.randint(0, 3))) + "]"
    keys = rnd.sample(["p", "q", "r", "s", "'t u'"], rnd.randint(0, 3))
    return "{" + ", ".join("%s: %s" % (k, flow(doc, depth + 1)) for k in keys) + "}"

def block(doc, indent, depth):
    """(text after "key: " or "- ", lines below at indent)"""
    r = rnd.random()
    if doc.anchors and r < 0.1:
        return "*" + rnd.choice(doc.anchors)[0], []
    if depth >= 4 or r < 0.45:
        s = scalar(False)
        if rnd.random() < 0.1 and not s.startswith("!"):
            a = doc.anchor()
            doc.anchors.append((a, "scalar"))
            return "&%s %s" % (a, s), []
        return s, []
    if r < 0.55:
        return flow(doc, depth), []
    if r < 0.6:
        style = rnd.choice(["|", ">", "|-", ">+"])
        pad = " " * indent
        return style, [pad + "line one", pad + "  more: text", pad + "last"]
    a = doc.anchor() if rnd.random() < 0.35 else None
    pad = " " * indent
    lines = []
    if r < 0.85:
        maps = [n for n, k in doc.anchors if k == "map"]
        if maps and rnd.random() < 0.4:
            if rnd.random() < 0.7:
                lines.append(pad + "<<: *" + rnd.choice(maps))
            else:
                lines.append(pad + "<<: [" + ", ".join("*" + m for m in rnd.sample(maps, min(len(maps), rnd.randint(1, 3)))) + "]")
        for k in rnd.sample(KEYS, rnd.randint(1, 4)):
            head, sub = block(doc, indent + 2, depth + 1)
            lines.append(pad + k + ":" + (" " + head if head else ""))
            lines += sub
        kind = "map"
    else:
        for _ in range(rnd.randint(1, 4)):
            head, sub = block(doc, indent + 2, depth + 1)
            if sub and not head:
                # "- " then the first line of a mapping on the same line
                lines.append(pad + "- " + sub[0].lstrip())
                lines += sub[1:]
            else:
                lines.append(pad + "-" + (" " + head if head else ""))
                lines += sub
        kind = "seq"
    if a:
        doc.anchors.append((a, kind))
    return ("&" + a if a else ""), lines

def document():
    doc = Doc()
    lines = ["# generated"]
    for k in rnd.sample(KEYS, rnd.randint(1, 5)):
        head, sub = block(doc, 2, 1)
        lines.append(k + ":" + (" " + head if head else ""))
        lines += sub
    return "\n".join(lines) + "\n"

def typed(v):
    """Values with their JSON types, so True never equals 1."""
    if v is None:
        return ("null",)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (int, float)):
        return ("num", float(v))
    if isinstance(v, str):
        return ("str", v)
    if isinstance(v, list):
        return ("list", [typed(x) for x in v])
    if isinstance(v, dict):
        return ("map", sorted((str(k), typed(x)) for k, x in v.items()))
    return ("other", repr(v))

texts, expected = [], []
for i in range(cases):
    text = document()
    try:
        expected.append(("value", yaml.load(text, Loader=Oracle)))
    except yaml.YAMLError as e:
        expected.append(("error", str(e).splitlines()[0]))
    texts.append(text)
    with open(os.path.join(tmp, "%d.yaml" % i), "w") as f:
        f.write(text)

out = subprocess.run([driver] + [os.path.join(tmp, "%d.yaml" % i) for i in range(cases)],
                     capture_output=True, text=True, check=True).stdout.splitlines()
assert len(out) == cases, "driver answered %d of %d" % (len(out), cases)

def has_nonstr_key(v):
    if isinstance(v, dict):
        return any(not isinstance(k, str) or has_nonstr_key(x) for k, x in v.items())
    if isinstance(v, list):
        return any(has_nonstr_key(x) for x in v)
    return False

bad = errors = skipped = 0
for i, (text, (kind, value), got) in enumerate(zip(texts, expected, out)):
    if kind == "value" and has_nonstr_key(value):
        # PyYAML made a non-string key (a number, a boolean); JSON keys are
        # text, so the two cannot be compared as they are
        skipped += 1
        continue
    if kind == "error":
        errors += 1
        ok = got.startswith("ERR")
    else:
        ok = not got.startswith("ERR") and typed(json.loads(got)) == typed(value)
    if not ok:
        bad += 1
        if bad <= 5:
            print("MISMATCH case %d:\n%s" % (i, text))
            print("  PyYAML:  ", kind, value if kind == "value" else "")
            print("  pushpool:", got[:500])
print("yaml_oracle: %d documents, %d refused by both, %d with non-text keys skipped, "
      "%d mismatches" % (cases, errors, skipped, bad))
print("%d passed, %d failed" % (cases - skipped - bad, bad))
sys.exit(1 if bad else 0)
PY
