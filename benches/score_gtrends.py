#!/usr/bin/env python3
"""Scores a `kwi-train forecast` CSV against the held-out tail of a Google Trends wide file,
independently of our Rust code (standard library only).

    kwi-train forecast --train data/samples/gtrends_pt_weekly_topics.csv --format gtrends \
        --horizon 13 --holdout 13 --out /tmp/gt.csv
    python3 benches/score_gtrends.py data/samples/gtrends_pt_weekly_topics.csv /tmp/gt.csv

The last H values of every column are the test part; the forecast CSV must hold steps 1..H for
every column (`id` = column name). Prints MASE (mean over series of mean|y - f| / in-sample mean
|y_t - y_{t-m}|, for m = 1 and m = 52) and sMAPE for the forecast and for seasonal naive (period
52), which on this kind of data beats AutoETS and AutoARIMA.
"""
import argparse
import csv

ap = argparse.ArgumentParser()
ap.add_argument("trends", help="wide file: first column the week, one column per topic")
ap.add_argument("forecast", help="kwi-train forecast CSV (id,step,mean,...)")
ap.add_argument("--horizon", type=int, default=13)
a = ap.parse_args()
H = a.horizon


def value(cell):
    cell = cell.strip()
    return 0.5 if cell == "<1" else float(cell)


with open(a.trends, newline="") as f:
    rows = [r for r in csv.reader(f) if r]
# A raw download starts with a "Category: ..." line and a blank one: skip to the header.
while len(rows[0]) < 2:
    rows = rows[1:]
header, body = rows[0], rows[1:]
series = {name.split(":")[0].strip(): [value(r[j]) for r in body] for j, name in enumerate(header) if j > 0}

forecast = {}
with open(a.forecast, newline="") as f:
    for r in csv.DictReader(f):
        forecast.setdefault(r["id"], {})[int(r["step"])] = float(r["mean"])
missing = [k for k in series if sorted(forecast.get(k, {})) != list(range(1, H + 1))]
if missing:
    raise SystemExit(f"the forecast lacks steps 1..{H} for {len(missing)} series, e.g. {missing[:3]}")


def smape(actual, pred):
    return 200 / H * sum(0 if abs(y) + abs(p) == 0 else abs(y - p) / (abs(y) + abs(p)) for y, p in zip(actual, pred))


def mase(train, actual, pred, m):
    scale = sum(abs(train[t] - train[t - m]) for t in range(m, len(train))) / (len(train) - m)
    return sum(abs(y - p) for y, p in zip(actual, pred)) / H / scale


scores = {"forecast": [0.0, 0.0, 0.0], "seasonal naive": [0.0, 0.0, 0.0]}
for name, v in series.items():
    train, test = v[:-H], v[-H:]
    preds = {
        "forecast": [forecast[name][s] for s in range(1, H + 1)],
        "seasonal naive": [train[len(train) - 52 + (i % 52)] for i in range(H)],
    }
    for model, p in preds.items():
        scores[model][0] += mase(train, test, p, 1) / len(series)
        scores[model][1] += mase(train, test, p, 52) / len(series)
        scores[model][2] += smape(test, p) / len(series)
print(f"{len(series)} series, horizon {H}")
print("| model | MASE (m=1) | MASE (m=52) | sMAPE |\n| --- | ---: | ---: | ---: |")
for model, (m1, m52, s) in scores.items():
    print(f"| {model} | {m1:.3f} | {m52:.3f} | {s:.3f} |")
