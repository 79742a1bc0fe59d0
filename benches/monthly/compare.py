#!/usr/bin/env python3
"""kwi against statsforecast's AutoARIMA and AutoETS on a monthly panel, side by side.

    python3 -m venv .venv && .venv/bin/pip install -r benches/monthly/requirements.txt
    kwi-train forecast --train data/samples/gtrends_pt_monthly_topics.csv --freq monthly \
        --holdout 12 --out /tmp/monthly.csv
    .venv/bin/python benches/monthly/compare.py data/samples/gtrends_pt_monthly_topics.csv /tmp/monthly.csv

The last H = 12 months of every column are the test part, unseen by every model. statsforecast
fits AutoARIMA(season_length=12), AutoETS(season_length=12) and SeasonalNaive(12) on the rest (80
and 95 % intervals); the kwi forecast CSV (`id,step,mean,lo_80,hi_80,lo_95,hi_95`) is scored with
the same code. Prints MASE (m = 1 and m = 12: mean over series of mean|y - f| / in-sample mean
|y_t - y_{t-m}|), sMAPE, the 80/95 % interval coverage and the mean 95/80 width ratio, and
statsforecast's fit + forecast time (RAYON/numba threads as the machine gives).
"""
import argparse
import csv
import time

import numpy as np
import pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import AutoARIMA, AutoETS, SeasonalNaive

ap = argparse.ArgumentParser()
ap.add_argument("panel", help="wide monthly file: `month` then one column per series")
ap.add_argument("forecast", help="kwi-train forecast CSV")
ap.add_argument("--horizon", type=int, default=12)
a = ap.parse_args()
H, M = a.horizon, 12

wide = pd.read_csv(a.panel)
date_col = wide.columns[0]
long = wide.melt(id_vars=date_col, var_name="unique_id", value_name="y").rename(columns={date_col: "ds"})
long["ds"] = pd.to_datetime(long["ds"])
long = long.sort_values(["unique_id", "ds"])
pos = long.groupby("unique_id").cumcount(ascending=False)  # 0 = a series' last month
train, test = long[pos >= H], long[pos < H]

sf = StatsForecast(
    models=[AutoARIMA(season_length=M), AutoETS(season_length=M), SeasonalNaive(season_length=M)],
    freq="MS",
    n_jobs=1,
)
t = time.perf_counter()
fc = sf.forecast(df=train, h=H, level=[80, 95])
sf_seconds = time.perf_counter() - t

preds = {}  # model -> id -> (mean[H], lo80, hi80, lo95, hi95)
for model in ["AutoARIMA", "AutoETS", "SeasonalNaive"]:
    for uid, g in fc.groupby("unique_id"):
        g = g.sort_values("ds")
        preds.setdefault(model, {})[uid] = tuple(
            g[c].to_numpy() for c in [model, f"{model}-lo-80", f"{model}-hi-80", f"{model}-lo-95", f"{model}-hi-95"]
        )
with open(a.forecast, newline="") as f:
    rows = list(csv.DictReader(f))
kwi = {}
for r in rows:
    kwi.setdefault(r["id"], {})[int(r["step"])] = r
for uid, steps in kwi.items():
    if sorted(steps) != list(range(1, H + 1)):
        raise SystemExit(f"{a.forecast}: series {uid} lacks steps 1..{H}")
    col = lambda c: np.array([float(steps[s][c]) for s in range(1, H + 1)])
    preds.setdefault("kwi", {})[uid] = (col("mean"), col("lo_80"), col("hi_80"), col("lo_95"), col("hi_95"))

ids = sorted(train["unique_id"].unique())
missing = [i for i in ids if i not in preds["kwi"]]
if missing:
    raise SystemExit(f"{a.forecast} has no forecast for {len(missing)} series, e.g. {missing[:3]}")


def mase(y_train, y, f, m):
    scale = np.mean(np.abs(y_train[m:] - y_train[:-m]))
    return np.mean(np.abs(y - f)) / scale if scale > 0 else np.nan


def smape(y, f):
    d = np.abs(y) + np.abs(f)
    return 200 * np.mean(np.where(d == 0, 0, np.abs(y - f) / np.where(d == 0, 1, d)))


print(f"{len(ids)} series, horizon {H}, statsforecast fit+forecast {sf_seconds:.1f} s")
print("| model | MASE (m=1) | MASE (m=12) | sMAPE | 80 % coverage | 95 % coverage | 95/80 width |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for model in ["kwi", "AutoARIMA", "AutoETS", "SeasonalNaive"]:
    m1, m12, s, c80, c95, ratio = [], [], [], [], [], []
    for uid in ids:
        y_train = train.loc[train.unique_id == uid, "y"].to_numpy()
        y = test.loc[test.unique_id == uid, "y"].to_numpy()
        mean, lo80, hi80, lo95, hi95 = preds[model][uid]
        m1.append(mase(y_train, y, mean, 1))
        m12.append(mase(y_train, y, mean, M))
        s.append(smape(y, mean))
        c80.append(np.mean((y >= lo80) & (y <= hi80)))
        c95.append(np.mean((y >= lo95) & (y <= hi95)))
        w80 = np.mean(hi80 - lo80)
        if w80 > 0:
            ratio.append(np.mean(hi95 - lo95) / w80)
    print(
        f"| {model} | {np.nanmean(m1):.3f} | {np.nanmean(m12):.3f} | {np.mean(s):.2f} | "
        f"{100 * np.mean(c80):.1f} % | {100 * np.mean(c95):.1f} % | {np.mean(ratio):.2f} |"
    )
