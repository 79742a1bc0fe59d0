#!/usr/bin/env python3
"""Independent M4 Weekly scorer for a `kwi-train forecast` CSV (no dependency on our Rust code).

Usage: python3 benches/score_m4.py FORECAST.csv [M4_DIR, default: the repository's data/m4]
Prints sMAPE, MASE (m = 1), OWA vs Naive2 (= naive for Weekly), and 80/95 % interval coverage.
"""
import csv
import sys
from pathlib import Path

fc_path = sys.argv[1]
root = sys.argv[2] if len(sys.argv) > 2 else str(Path(__file__).resolve().parents[1] / "data/m4")


def read(path):
    rows = list(csv.reader(open(path)))[1:]
    return {r[0]: [float(x) for x in r[1:] if x.strip() != ""] for r in rows}


train, test = read(f"{root}/Weekly-train.csv"), read(f"{root}/Weekly-test.csv")
fc = {}
for r in csv.DictReader(open(fc_path)):
    fc.setdefault(r["id"], []).append(r)


def smape(a, f):
    return 200 / len(a) * sum(abs(x - y) / (abs(x) + abs(y)) if abs(x) + abs(y) > 0 else 0 for x, y in zip(a, f))


def mase(tr, a, f):
    scale = sum(abs(tr[i] - tr[i - 1]) for i in range(1, len(tr))) / (len(tr) - 1)
    return sum(abs(x - y) for x, y in zip(a, f)) / len(a) / scale


s = m = sn = mn = 0.0
inside80 = inside95 = points = 0
for k, tr in train.items():
    rows = sorted(fc[k], key=lambda r: int(r["step"]))
    f = [float(r["mean"]) for r in rows]
    a = test[k]
    naive = [tr[-1]] * len(a)
    s += smape(a, f)
    m += mase(tr, a, f)
    sn += smape(a, naive)
    mn += mase(tr, a, naive)
    for r, y in zip(rows, a):
        points += 1
        inside80 += float(r["lo_80"]) <= y <= float(r["hi_80"])
        inside95 += float(r["lo_95"]) <= y <= float(r["hi_95"])
n = len(train)
s, m, sn, mn = s / n, m / n, sn / n, mn / n
print(f"sMAPE {s:.3f}  MASE {m:.3f}  OWA {0.5 * (s / sn + m / mn):.3f}  "
      f"(Naive2 sMAPE {sn:.3f} MASE {mn:.3f})  coverage 80% {inside80 / points:.3f} 95% {inside95 / points:.3f}")
