#!/usr/bin/env python3
"""nabla trace --html in a real browser, and --svg through xmllint.

    test_trace_page.py NABLA CHROMIUM XMLLINT|-   (or NABLA --skip WHY)

For the notes' three examples and five random expressions: the page is
opened with headless chromium at several #mode=...&step=... states and the
numbers it shows (the status line's data, the node boxes' text and the
marked row of the table) are compared with `nabla trace --json` and the
table `nabla trace` prints; the page must load nothing (its content
security policy allows nothing but its own inline style and script, and
no element names an outside resource); a screenshot is taken. Each --svg
picture must be well-formed XML (xmllint). A graph of more than 200 tensors
is refused with a message naming --dot."""
import html.parser
import json
import os
import random
import re
from concurrent.futures import ThreadPoolExecutor
import subprocess
import sys
import tempfile

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAILED: " + what)


class Dom(html.parser.HTMLParser):
    """The elements with an id: their attributes and text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.by_id, self.stack, self.rows, self.script = {}, [], [], None
        self.in_data = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        entry = {"tag": tag, "attrs": a, "text": ""}
        if "id" in a:
            self.by_id[a["id"]] = entry
        if tag == "tr":
            self.rows.append({"class": a.get("class", ""), "text": ""})
        self.in_data = a.get("id") == "trace-data"
        self.stack.append(entry)

    def handle_endtag(self, tag):
        while self.stack:
            e = self.stack.pop()
            if e["tag"] == tag:
                break
        self.in_data = False

    def handle_data(self, data):
        for e in self.stack:
            e["text"] += data
        if self.stack and any(e["tag"] == "tr" for e in self.stack):
            self.rows[-1]["text"] += data
        if self.in_data:
            self.script = (self.script or "") + data


def run(args):
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def dump_dom(chromium, path, state):
    r = run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--dump-dom", "file://" + path + "#" + state])
    d = Dom()
    d.feed(r.stdout)
    return d, r


def close(shown, want, digits=6):
    """a number as the page shows it (6 significant digits) against the JSON's"""
    try:
        v = float(shown)
    except ValueError:
        return False
    return abs(v - want) <= 10 ** (1 - digits) * max(abs(want), 1e-300) + 1e-300


def number_in(text, prefix):
    text = text.strip()
    if not text.startswith(prefix):
        return None
    return text[len(prefix):].split(" ")[0]


def page_checks(nabla, chromium, tmp, expr, at, shots, full):
    rows = [json.loads(line) for line in run([nabla, "trace", expr, "--at", at, "--json"])
            .stdout.splitlines()]
    table = run([nabla, "trace", expr, "--at", at]).stdout.splitlines()
    check(bool(rows), "%s at %s: nabla trace --json prints rows" % (expr, at))
    if not rows:
        return
    page = os.path.join(tmp, "page%d.html" % abs(hash(expr)))
    r = run([nabla, "trace", expr, "--at", at, "--html", page])
    check(r.returncode == 0, "%s: --html wrote the page: %s" % (expr, r.stderr))
    if r.returncode != 0:
        return
    text = open(page, encoding="utf-8").read()
    # nothing to fetch: the policy, and no outside reference anywhere
    check("default-src 'none'" in text, expr + ": the page's content security policy")
    for bad in ("src=", "href=", r"url\((?!#)", "@import", r"fetch\(", "XMLHttpRequest",
                r"import\("):
        check(not re.search(bad, text), "%s: the page names an outside resource (%s)" % (expr, bad))
    evals = [x for x in rows if x["sweep"] == "eval"]
    fwd = [x for x in rows if x["sweep"] == "forward"]
    rev = [x for x in rows if x["sweep"] == "reverse"]
    wrts = sorted(set(x["wrt"] for x in fwd), key=lambda w: [x["wrt"] for x in fwd].index(w))
    states = [("eval", len(evals), None), ("reverse", max(1, len(rev) // 2), None)]
    if full:
        states += [("eval", 1, None), ("reverse", len(rev), None)]
    if wrts:
        w = wrts[-1]
        n = len([x for x in fwd if x["wrt"] == w])
        states += [("forward", max(1, n // 2), w)] + ([("forward", n, w)] if full else [])
    names = ["mode=%s&step=%d" % (m, k) + ("&wrt=" + w if w else "") for m, k, w in states]
    with ThreadPoolExecutor(2) as pool:  # two browsers at a time: two cores
        doms = list(pool.map(lambda st: dump_dom(chromium, page, st), names))
    for (mode, step, wrt), state, (dom, res) in zip(states, names, doms):
        st = dom.by_id.get("status")
        check(st is not None and st["attrs"].get("data-mode") == mode
              and st["attrs"].get("data-step") == str(step),
              "%s #%s: the page shows that state (%s)" % (expr, state, st and st["attrs"]))
        if not st or dom.script is None:
            continue
        data = json.loads(dom.script)
        index = {n["label"]: k for k, n in enumerate(data["nodes"])}
        if mode == "eval":
            row, box, prefix, key = evals[step - 1], "v%d", "= ", "value"
            node = row["node"]
        elif mode == "forward":
            row = [x for x in fwd if x["wrt"] == wrt][step - 1]
            box, prefix, key, node = "d%d", "\u1e6b = ", "tangent", row["node"]
        else:
            row, box, prefix, key = rev[step - 1], "d%d", "\u1e21 = ", "adjoint_to"
            node = row["to"]
        want = row[key]
        check(st["attrs"].get("data-node") == node,
              "%s #%s: the step is node %s (page: %s)" % (expr, state, node,
                                                         st["attrs"].get("data-node")))
        check(float(st["attrs"].get("data-value", "nan")) == want,
              "%s #%s: the step's number %s equals the JSON's %r" % (
                  expr, state, st["attrs"].get("data-value"), want))
        shown = dom.by_id.get(box % index[node], {"text": ""})["text"]
        check(close(number_in(shown, prefix) or "", want),
              "%s #%s: box of %s shows %r, the JSON %r" % (expr, state, node, shown, want))
        cur = [r for r in dom.rows if r["class"] == "cur"]
        check(len(cur) == 1 and cur[0]["text"] in table,
              "%s #%s: the marked row is a row nabla trace prints (%r)" % (
                  expr, state, cur and cur[0]["text"]))
    if shots:
        png = os.path.join(tmp, "page.png")
        run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--virtual-time-budget=2000", "--window-size=1300,850", "--screenshot=" + png,
             "file://" + page + "#mode=reverse&step=5"])
        ok = os.path.exists(png) and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
        check(ok and os.path.getsize(png) > 10000, "%s: a screenshot of the page" % expr)


def svg_checks(nabla, xmllint, tmp, expr, at):
    for show in ("values", "forward", "reverse"):
        svg = os.path.join(tmp, "g.svg")
        r = run([nabla, "trace", expr, "--at", at, "--svg", svg, "--show", show])
        check(r.returncode == 0 and os.path.exists(svg), "%s: --svg --show %s: %s" % (
            expr, show, r.stderr))
        if xmllint and r.returncode == 0:
            x = run([xmllint, "--noout", svg])
            check(x.returncode == 0, "%s: the SVG is well-formed XML: %s" % (expr, x.stderr))


def random_expr(rng, depth):
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(["x", "y", "z", "2", "0.5"])
    a, b = random_expr(rng, depth - 1), random_expr(rng, depth - 1)
    return rng.choice(["(%s + %s)", "(%s - %s)", "%s*%s", "%s/(1 + %s^2)", "exp(%s)*%s",
                       "sin(%s) - %s", "tanh(%s + %s)", "-%s*%s", "sigmoid(%s)/(2 + cos(%s))"]) % (
                           a, b)


def main():
    nabla = sys.argv[1]
    if sys.argv[2] == "--skip":
        print("skipped: " + sys.argv[3])
        sys.exit(77)
    chromium, xmllint = sys.argv[2], sys.argv[3] if sys.argv[3] != "-" else None
    if not xmllint:
        print("note: no xmllint: the SVG pictures are written but not validated")
    exprs = [("(x+y)*z", "x=-2,y=5,z=-4"), ("1/(exp(-(w*x+b))+1)", "x=1,w=0,b=0"),
             ("ln(x) + x^2*y - sin(x*y)", "x=1.5,y=2")]
    rng = random.Random(16)
    while len(exprs) < 8:
        e = random_expr(rng, 3)
        if any(v in e for v in "xyz") and any(op in e for op in "+-*/("):
            vs = sorted(set(c for c in e if c in "xyz"))
            exprs.append((e, ",".join("%s=%.3g" % (v, rng.uniform(-1.5, 1.5)) for v in vs)))
    with tempfile.TemporaryDirectory() as tmp:
        for i, (expr, at) in enumerate(exprs):
            page_checks(nabla, chromium, tmp, expr, at, shots=i == 1, full=i < 3)
            svg_checks(nabla, xmllint, tmp, expr, at)
        # too large to draw: a clear message, no file
        big = "+".join("sin(%d*x)" % k for k in range(1, 80))
        out = os.path.join(tmp, "big.html")
        r = run([nabla, "trace", big, "--at", "x=1", "--html", out])
        check(r.returncode != 0 and "--dot" in r.stderr and not os.path.exists(out),
              "a graph of more than 200 tensors is refused, naming --dot: " + r.stderr)
        # what trace refuses, --html refuses with the same message
        a = run([nabla, "trace", "x*", "--at", "x=1"])
        b = run([nabla, "trace", "x*", "--at", "x=1", "--html", os.path.join(tmp, "bad.html")])
        check(a.returncode == b.returncode == 2 and a.stderr == b.stderr and a.stderr,
              "a bad expression: the same refusal with --html (%r, %r)" % (a.stderr, b.stderr))
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)
    print("all checks passed (%d expressions)" % len(exprs))


if __name__ == "__main__":
    main()
