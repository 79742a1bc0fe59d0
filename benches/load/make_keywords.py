#!/usr/bin/env python3
"""Builds the load benchmark's keyword panel from REAL data: overlapping 104-week windows of the
M4 Weekly training series (data/m4/Weekly-train.csv), one keyword per window, in the long
layout `kwi import` reads. Not marketplace keywords, so they go on platform `benchmark`; every
keyword is named after its source ("m4 w123 at 520" = series W123 from value 520), so nothing here
pretends to be real keyword demand. Standard library only.

Usage: make_keywords.py [--count 10000] [--weeks 104] [--stride 26] OUT.csv KEYWORDS.txt
KEYWORDS.txt gets one `benchmark/<url-encoded keyword>` per line, in a seeded random order (the
order is the Zipf rank in the wrk scripts).
"""
import argparse
import csv
import datetime as dt
import random
import sys
import urllib.parse
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--count", type=int, default=10_000)
ap.add_argument("--weeks", type=int, default=104)
ap.add_argument("--stride", type=int, default=26)
ap.add_argument("--m4", default=str(Path(__file__).resolve().parents[2] / "data/m4/Weekly-train.csv"))
ap.add_argument("out")
ap.add_argument("keywords")
a = ap.parse_args()

series = []
with open(a.m4, newline="") as f:
    r = csv.reader(f)
    next(r)
    for row in r:
        vals = [float(v) for v in row[1:] if v not in ("", "NA")]
        series.append((row[0].lower(), vals))

# Round-robin over series so every series contributes before any contributes twice.
windows, offset = [], 0
while len(windows) < a.count:
    added = False
    for sid, vals in series:
        start = len(vals) - a.weeks - offset
        if start >= 0:
            windows.append((sid, start, vals[start : start + a.weeks]))
            added = True
            if len(windows) == a.count:
                break
    if not added:
        sys.exit(f"only {len(windows)} windows of {a.weeks} weeks at stride {a.stride}; lower --stride")
    offset += a.stride

first = dt.date(2024, 11, 24) - dt.timedelta(weeks=a.weeks - 1)  # a Sunday; last week 2024-11-24
with open(a.out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["platform", "keyword", "period_start", "search_volume"])
    for sid, start, vals in windows:
        kw = f"m4 {sid} at {start}"
        for i, v in enumerate(vals):
            w.writerow(["benchmark", kw, (first + dt.timedelta(weeks=i)).isoformat(), f"{v:g}"])

keys = [f"benchmark/{urllib.parse.quote(f'm4 {sid} at {start}')}" for sid, start, _ in windows]
random.Random(42).shuffle(keys)
Path(a.keywords).write_text("\n".join(keys) + "\n")
print(f"{len(windows)} keywords x {a.weeks} weeks from {len(series)} M4 Weekly series -> {a.out}", file=sys.stderr)
