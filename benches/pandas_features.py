"""The demand features of `kwi_features::demand` (weekly defaults) written in pandas/NumPy, timed on
the same panel the Rust example writes (`features/examples/bench_features.rs`, Parquet).

Same algorithm as the Rust pipeline, so the comparison is of the engines, not of the methods: sort
by (series, t), compute each shift / rolling statistic over the whole column, keep a value only where
its window lies inside its own series (t >= window - 1). Features are float32, `value`/`scale`
float64. The printed checksums must match the Rust run's.

    python3 benches/pandas_features.py /tmp/kwi_bench_panel.parquet
"""

import resource
import sys
import time

import numpy as np
import pandas as pd

LAGS = [1, 2, 4, 13, 52]
WINDOWS = [4, 13, 52]
GROWTH = [1, 4, 13, 52]
TREND = 13
VOL = 13
ZERO = 52
SEASONAL = [4, 13, 26, 52]
ACF_WINDOW = 104
SCALE = 52
FOURIER = 2
TINY = 1e-9


def inside(values, t, k):
    """Keep values where t >= k (the window lies inside the series), NaN elsewhere."""
    return np.where(t >= k, values, np.nan)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def running_sum(e, t):
    cs = np.cumsum(e)
    base = pd.Series(np.where(t == 0, cs - e, np.nan)).ffill().to_numpy()
    return cs - base


def features(df: pd.DataFrame) -> pd.DataFrame:
    df = df.sort_values(["series", "t"], kind="stable", ignore_index=True)
    x = df["value"].to_numpy(dtype=np.float64)
    xs = pd.Series(x)
    t = df["t"].to_numpy()
    out = {c: df[c] for c in ["series", "t", "period_start", "value", "observed"]}

    for k in LAGS:
        out[f"lag_{k}"] = f32(inside(xs.shift(k).to_numpy(), t, k))
    for w in WINDOWS:
        r = xs.rolling(w, min_periods=w)
        out[f"roll_mean_{w}"] = f32(inside(r.mean().to_numpy(), t, w - 1))
        out[f"roll_std_{w}"] = f32(inside(r.std().to_numpy(), t, w - 1))
        out[f"roll_min_{w}"] = f32(inside(r.min().to_numpy(), t, w - 1))
        out[f"roll_max_{w}"] = f32(inside(r.max().to_numpy(), t, w - 1))
    for k in GROWTH:
        prev = xs.shift(k).to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(prev != 0, x / prev - 1.0, np.nan)
        out[f"growth_{k}"] = f32(inside(g, t, k))

    # Trend: least-squares slope as a weighted rolling sum.
    centre = (TREND - 1) / 2
    weights = np.arange(TREND) - centre
    denom = float((weights**2).sum())
    win = np.lib.stride_tricks.sliding_window_view(x, TREND) @ weights
    slope = np.concatenate([np.full(TREND - 1, np.nan), win]) / denom
    slope = inside(slope, t, TREND - 1)
    mean_trend = xs.rolling(TREND, min_periods=TREND).mean().to_numpy()
    out[f"trend_slope_{TREND}"] = f32(slope)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[f"trend_slope_rel_{TREND}"] = f32(np.where(mean_trend > TINY, slope / mean_trend, np.nan))
    diff_std = inside(pd.Series(x - xs.shift(1).to_numpy()).rolling(VOL, min_periods=VOL).std().to_numpy(), t, VOL)
    mean_vol = xs.rolling(VOL, min_periods=VOL).mean().to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out[f"volatility_{VOL}"] = f32(np.where(mean_vol > TINY, diff_std / mean_vol, np.nan))
    zeros = pd.Series((x == 0).astype(np.float64)).rolling(ZERO, min_periods=ZERO).mean().to_numpy()
    out[f"zero_share_{ZERO}"] = f32(inside(zeros, t, ZERO - 1))

    acfs = []
    for k in SEASONAL:
        n = ACF_WINDOW - k
        y = xs.shift(k, fill_value=0.0)
        mx = xs.rolling(n, min_periods=n).mean()
        vx = xs.rolling(n, min_periods=n).var() * ((n - 1) / n)
        c = (xs * y).rolling(n, min_periods=n).mean()
        my = mx.shift(k, fill_value=0.0)
        vy = vx.shift(k, fill_value=0.0)
        cov = c - mx * my
        flat = (vx <= 1e-9 * mx * mx + 1e-12) | (vy <= 1e-9 * my * my + 1e-12)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(flat, np.nan, cov / np.sqrt(vx * vy))
        a = f32(inside(r, t, ACF_WINDOW - 1))
        out[f"acf_{k}"] = a
        acfs.append(a)
    stack = np.vstack(acfs)
    all_nan = np.isnan(stack).all(axis=0)
    best = np.where(all_nan, 0, np.nanargmax(np.where(np.isnan(stack), -np.inf, stack), axis=0))
    best_v = np.where(all_nan, np.nan, stack[best, np.arange(stack.shape[1])])
    out["seasonality_strength"] = f32(np.where(np.isnan(best_v), np.nan, np.maximum(best_v, 0.0)))
    periods = np.array(SEASONAL, dtype=np.float32)
    out["dominant_period"] = f32(np.where(best_v > 0, periods[best], np.nan))

    # Calendar terms on the distinct dates, mapped back (as the Rust pipeline joins them).
    dates = pd.Series(pd.unique(df["period_start"]))
    dt = pd.to_datetime(dates)
    cal = pd.DataFrame({"period_start": dates})
    cal["week_of_year"] = f32(dt.dt.isocalendar().week.to_numpy())
    cal["month"] = f32(dt.dt.month.to_numpy())
    doy = dt.dt.day_of_year.to_numpy()
    for j in range(1, FOURIER + 1):
        angle = 2 * np.pi * j * doy / 365.25
        cal[f"fourier_sin_{j}"] = f32(np.sin(angle))
        cal[f"fourier_cos_{j}"] = f32(np.cos(angle))
    idx = pd.Index(cal["period_start"]).get_indexer(df["period_start"])
    for c in cal.columns[1:]:
        out[c] = cal[c].to_numpy()[idx]

    ax = np.abs(x)
    trailing = np.where(t >= SCALE - 1, pd.Series(ax).rolling(SCALE, min_periods=SCALE).sum().to_numpy(), running_sum(ax, t))
    cnt = np.where(t >= SCALE - 1, float(SCALE), t + 1.0)
    mean = trailing / cnt
    scale = np.where(mean > TINY, mean, 1.0)
    out["scale"] = scale
    out["scaled_value"] = f32(x / scale)
    out["log1p_value"] = f32(np.log1p(x))
    out["gaps_to_date"] = running_sum((~df["observed"].to_numpy()).astype(np.uint32), t).astype(np.uint32)
    return pd.DataFrame(out)


def checksums(f: pd.DataFrame) -> str:
    cols = ["lag_52", "roll_mean_13", "roll_std_13", "roll_max_52", "growth_4", "trend_slope_13", "zero_share_52", "acf_52", "scale"]
    parts = []
    for c in cols:
        v = f[c].to_numpy(dtype=np.float64)
        ok = ~np.isnan(v)
        parts.append(f"{c}={v[ok].sum():.6e}/{int(ok.sum())}")
    return " ".join(parts)


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/kwi_bench_panel.parquet"
    panel = pd.read_parquet(path, columns=["series", "t", "period_start", "value", "observed"])
    start = time.perf_counter()
    f = features(panel)
    secs = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pandas {pd.__version__} demand features: {secs:.2f} s for {len(f)} rows x {f.shape[1]} columns; peak RSS {peak:.0f} MiB (input panel included)")
    print(f"checksums {checksums(f)}")
    print(f"RESULT pandas_seconds={secs:.3f} peak_mib={peak:.0f}")


if __name__ == "__main__":
    main()
