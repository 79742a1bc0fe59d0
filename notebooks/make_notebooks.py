#!/usr/bin/env python3
"""Writes the notebooks in this folder from the cell sources below (so their diffs stay readable).
Run after editing: `python notebooks/make_notebooks.py`. Outputs are never committed; CI executes
every notebook against a live server (notebooks/run_all.sh)."""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

COMMON = '''import os, io, json, urllib.parse, urllib.request
%matplotlib inline
import matplotlib.pyplot as plt
import polars as pl
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

KWI = os.environ.get("KWI_URL", "http://127.0.0.1:8080")
# An API key (`kwi users create --role analyst …` prints one; the first `kwi serve` prints an admin's).
KEY = os.environ["KWI_API_KEY"]

def call(path, body=None):
    """A request to the API with the key; JSON bodies are POSTed."""
    headers = {"authorization": f"Bearer {KEY}"}
    if body is not None:
        headers["content-type"] = "application/json"
    return urllib.request.urlopen(urllib.request.Request(KWI + path, body, headers))

def get_json(path):
    with call(path) as r:
        return json.load(r)

def export(kind, fmt="arrow", **filters):
    """Streams /v1/export/{kind} into a polars DataFrame (Arrow IPC stream or Parquet)."""
    q = urllib.parse.urlencode({"format": fmt, **{k: v for k, v in filters.items() if v is not None}})
    with call(f"/v1/export/{kind}?{q}") as r:
        if fmt == "arrow":
            table = ipc.open_stream(r).read_all()
        else:
            table = pq.read_table(io.BytesIO(r.read()))
    return pl.from_arrow(table)

print("server:", KWI, "-", get_json("/readyz")["status"])'''

explore = [
    new_markdown_cell("# Exploring the stored observations\n\nPulls every stored observation through the Arrow export "
                      "(`GET /v1/export/observations`) into polars and looks at coverage, zeros and seasonality. "
                      "Set `KWI_URL` to the server (default `http://127.0.0.1:8080`) and `KWI_API_KEY` to an analyst's or admin's key (`kwi serve` with no configuration "
                      "serves the built-in sample: 32 Google Trends topics, Portugal, 2006–2018)."),
    new_code_cell(COMMON),
    new_code_cell('''obs = export("observations")
print(obs.shape)
assert obs.height > 0, "the store is empty: import data or start kwi serve without --no-sample"
obs.head()'''),
    new_markdown_cell("## What is stored, per platform"),
    new_code_cell('''per_platform = (obs.group_by("platform")
    .agg(pl.col("keyword").n_unique().alias("keywords"), pl.len().alias("rows"),
         pl.col("period_start").min().alias("first"), pl.col("period_start").max().alias("last"),
         pl.col("search_volume").is_null().mean().alias("missing_volume"))
    .sort("platform"))
per_platform'''),
    new_markdown_cell("## Zeros\n\nLow-volume keywords report many zero weeks; forecasters must not be scored "
                      "on them as if they were smooth series."),
    new_code_cell('''zeros = (obs.filter(pl.col("search_volume").is_not_null())
    .group_by("platform", "keyword")
    .agg((pl.col("search_volume") == 0).mean().alias("zero_share"), pl.len().alias("weeks"))
    .sort("zero_share", descending=True))
assert zeros["zero_share"].is_between(0, 1).all()
zeros.head(10)'''),
    new_markdown_cell("## Seasonality\n\nAutocorrelation at lag 52 (one year of weeks) per keyword: close to 1 means "
                      "a strong yearly pattern (seasonal naive is then a hard baseline)."),
    new_code_cell('''def acf(values, lag):
    x = pl.Series(values).cast(pl.Float64)
    x = x - x.mean()
    den = (x * x).sum()
    return float((x[lag:] * x[:-lag]).sum() / den) if den > 0 and len(x) > lag else float("nan")

seasonal = (obs.filter(pl.col("search_volume").is_not_null()).sort("period_start")
    .group_by("platform", "keyword", maintain_order=True)
    .agg(pl.col("search_volume"))
    .with_columns(pl.col("search_volume").map_elements(lambda v: acf(v.to_list(), 52), return_dtype=pl.Float64).alias("acf52"))
    .drop("search_volume")
    .sort("acf52", descending=True, nulls_last=True))
seasonal.head(10)'''),
    new_code_cell('''top = seasonal.head(4)["keyword"].to_list()
fig, axes = plt.subplots(len(top), 1, figsize=(10, 2.2 * len(top)), sharex=True)
for ax, kw in zip(axes, top):
    s = obs.filter(pl.col("keyword") == kw).sort("period_start")
    ax.plot(s["period_start"].to_list(), s["search_volume"].to_list(), lw=0.8)
    ax.set_title(f"{kw} (lag-52 autocorrelation {seasonal.filter(pl.col('keyword') == kw)['acf52'][0]:.2f})", fontsize=9)
fig.tight_layout()'''),
]

report = [
    new_markdown_cell("# Reading a training run and comparing models\n\n`kwi-train evaluate` writes, next to "
                      "`report.md` / `report.json`, the same tables as Parquet and Arrow IPC: `metrics.parquet` "
                      "(one row per model: sMAPE, MASE, OWA, coverage, MSIS), `series_metrics.parquet` (per series "
                      "and model) and `forecasts.parquet` (ensemble forecasts with bands and the actuals). Set "
                      "`KWI_RUN_DIR` to the run folder (default: the newest `runs/eval-*`)."),
    new_code_cell('''import os, json, glob
from pathlib import Path
%matplotlib inline
import matplotlib.pyplot as plt
import polars as pl

run = os.environ.get("KWI_RUN_DIR") or max(glob.glob("../runs/eval-*") + glob.glob("runs/eval-*"), key=os.path.getmtime)
run = Path(run)
report = json.loads((run / "report.json").read_text())
print(run, "- model", report["manifest"]["version"], "- members", report["manifest"]["ensemble"]["members"])'''),
    new_code_cell('''metrics = pl.read_parquet(run / "metrics.parquet")
assert metrics.equals(pl.read_ipc(run / "metrics.arrow")), "Parquet and Arrow copies agree"
metrics'''),
    new_markdown_cell("## Per-series accuracy by model\n\nThe mean hides the spread: where does each model win?"),
    new_code_cell('''per_series = pl.read_parquet(run / "series_metrics.parquet")
wide = per_series.pivot(on="model", index="series", values="mase")
best = (per_series.sort("mase").group_by("series").first()
        .group_by("model").len().rename({"len": "series_won"}).sort("series_won", descending=True))
best'''),
    new_code_cell('''models = metrics["model"].to_list()
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.boxplot([per_series.filter(pl.col("model") == m)["mase"].drop_nans().to_list() for m in models], showfliers=False)
ax.set_xticks(range(1, len(models) + 1), models)
ax.set_ylabel("MASE per series"); ax.set_title("Spread of per-series MASE (lower is better)")
fig.tight_layout()'''),
    new_markdown_cell("## Are the intervals honest?\n\nCoverage of the ensemble's intervals on the held-out periods against the nominal level."),
    new_code_cell('''fc = pl.read_parquet(run / "forecasts.parquet")
cov = fc.select(
    ((pl.col("actual") >= pl.col("lo_80")) & (pl.col("actual") <= pl.col("hi_80"))).mean().alias("coverage_80"),
    ((pl.col("actual") >= pl.col("lo_95")) & (pl.col("actual") <= pl.col("hi_95"))).mean().alias("coverage_95"),
)
ens = metrics.filter(pl.col("model") == "ensemble")
assert abs(cov["coverage_80"][0] - ens["coverage_80"][0]) < 1e-9, "recomputed coverage matches the report"
cov'''),
]

forecasts = [
    new_markdown_cell("# Forecasts through the Arrow export\n\nAsks the server for forecasts of a few keywords "
                      "(`POST /v1/forecasts`), then reads them back with their bands through "
                      "`GET /v1/export/predictions` (Arrow IPC stream; Parquet works the same with `fmt=\"parquet\"`) "
                      "and plots them after the history."),
    new_code_cell(COMMON),
    new_code_cell('''obs = export("observations")
# Keywords with search volume (the sample's marketplace keywords carry listing data only).
top = (obs.filter(pl.col("search_volume").is_not_null())
       .group_by("platform", "keyword").agg(pl.col("search_volume").mean().alias("mean_volume"))
       .sort("mean_volume", descending=True).head(4))
body = json.dumps({"keywords": [{"platform": p, "keyword": k} for p, k in top.select("platform", "keyword").iter_rows()],
                   "horizon": 26, "levels": [80, 95]}).encode()
with call("/v1/forecasts", body) as r:
    batch = json.load(r)
print("model", batch["model_version"], "-", len(batch["results"]), "forecasts")
top'''),
    new_code_cell('''import time
keywords = ",".join(top["keyword"].to_list())
for _ in range(50):  # the server persists forecasts off the request path: give the writer a moment
    preds = export("predictions", keywords=keywords)
    preds = preds.filter((pl.col("horizon") == 26) & (pl.col("model_version") == batch["model_version"]))
    if preds.select(pl.col("keyword").n_unique()).item() == top.height:
        break
    time.sleep(0.2)
latest = preds.sort("created_at").group_by("platform", "keyword", "step").last().sort("keyword", "step")
assert latest.height == 26 * top.height
# The export holds exactly what the API answered.
first = batch["results"][0]
row = latest.filter((pl.col("keyword") == first["keyword"]) & (pl.col("step") == 1))
assert abs(row["mean"][0] - first["forecast"][0]["mean"]) < 1e-9
latest.head()'''),
    new_code_cell('''same_parquet = export("predictions", fmt="parquet", keywords=keywords)
assert same_parquet.height == export("predictions", keywords=keywords).height
fig, axes = plt.subplots(top.height, 1, figsize=(10, 2.4 * top.height))
for ax, (platform, kw) in zip(axes, top.select("platform", "keyword").iter_rows()):
    hist = obs.filter((pl.col("platform") == platform) & (pl.col("keyword") == kw)).sort("period_start").tail(104)
    f = latest.filter(pl.col("keyword") == kw)
    n = hist.height
    steps = list(range(n, n + f.height))
    ax.plot(range(n), hist["search_volume"].to_list(), color="black", lw=0.8, label="history")
    ax.fill_between(steps, f["lo_95"].to_list(), f["hi_95"].to_list(), alpha=0.2, label="95%")
    ax.fill_between(steps, f["lo_80"].to_list(), f["hi_80"].to_list(), alpha=0.35, label="80%")
    ax.plot(steps, f["mean"].to_list(), lw=1.2, label="forecast")
    ax.set_title(f"{platform}/{kw}", fontsize=9)
axes[0].legend(fontsize=8, ncol=4)
fig.tight_layout()'''),
]

timegpt = [
    new_markdown_cell("""# The TimeGPT client, pointed at kwi

Data scientists who already use Nixtla's `nixtla` SDK keep it: kwi answers the TimeGPT API's
`/model_params`, `/v2/forecast` and `/v2/cross_validation` (bodies over 1 MiB arrive
zstd-compressed; kwi decodes them). Set `base_url` to the kwi server and `api_key` to a kwi API key.
Weekly series are forecast by the served model; monthly (`freq="MS"`) and daily series by a seasonal
naive baseline of their own frequency, its intervals calibrated on the series you send (the
`x-kwi-model` response header names the model). The SDK version is pinned in `requirements.txt`."""),
    new_code_cell("""import os
import pandas as pd
from nixtla import NixtlaClient

KWI = os.environ.get("KWI_URL", "http://127.0.0.1:8080")
client = NixtlaClient(base_url=KWI, api_key=os.environ["KWI_API_KEY"])

# Real data: weekly Google Trends interest of four topics (the repository's sample), long format.
wide = pd.read_csv("../data/samples/gtrends_pt_weekly_topics.csv", parse_dates=["week"])
topics = ["coffee", "furniture", "clothing", "t-shirt"]
df = wide.melt(id_vars="week", value_vars=topics, var_name="unique_id", value_name="y").rename(columns={"week": "ds"})
df.groupby("unique_id").size()"""),
    new_code_cell("""fc = client.forecast(df=df, h=13, freq="W-SUN", level=[80, 95])
assert len(fc) == 13 * len(topics)
assert {"TimeGPT", "TimeGPT-lo-80", "TimeGPT-hi-80", "TimeGPT-lo-95", "TimeGPT-hi-95"} <= set(fc.columns)
assert (fc["TimeGPT-lo-95"] <= fc["TimeGPT-lo-80"]).all() and (fc["TimeGPT-hi-80"] <= fc["TimeGPT-hi-95"]).all()
# The SDK dates the forecast itself, from the last week and the frequency.
assert fc.groupby("unique_id")["ds"].min().eq(df["ds"].max() + pd.Timedelta(weeks=1)).all()
fc.head()"""),
    new_code_cell("""cv = client.cross_validation(df=df, h=13, freq="W-SUN", n_windows=3, step_size=13, level=[80, 95])
assert len(cv) == 3 * 13 * len(topics) and cv["cutoff"].nunique() == 3
inside = ((cv["y"] >= cv["TimeGPT-lo-95"]) & (cv["y"] <= cv["TimeGPT-hi-95"])).mean()
mae = (cv["y"] - cv["TimeGPT"]).abs().groupby(cv["unique_id"]).mean()
print(f"95 % interval coverage over the three windows: {inside:.0%}")
mae"""),
    new_code_cell("""# Monthly data: calendar-month means of the same topics (data/samples/gtrends_pt_monthly_topics.csv).
monthly = pd.read_csv("../data/samples/gtrends_pt_monthly_topics.csv", parse_dates=["month"])
mdf = monthly.melt(id_vars="month", value_vars=topics, var_name="unique_id", value_name="y").rename(columns={"month": "ds"})
mfc = client.forecast(df=mdf, h=12, freq="MS", level=[80, 95])
assert len(mfc) == 12 * len(topics)
assert (mfc["ds"].dt.day == 1).all()
ax = mdf[mdf.unique_id == "coffee"].set_index("ds")["y"].tail(48).plot(color="black", lw=0.8, figsize=(10, 3), label="history")
f = mfc[mfc.unique_id == "coffee"].set_index("ds")
ax.fill_between(f.index, f["TimeGPT-lo-95"], f["TimeGPT-hi-95"], alpha=0.2, label="95%")
f["TimeGPT"].plot(ax=ax, label="forecast")
ax.legend(); ax.set_title("coffee, monthly")"""),
]

for name, cells in [("01_explore_observations", explore), ("02_training_report", report), ("03_forecasts_via_arrow", forecasts), ("04_timegpt_client", timegpt)]:
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, HERE / f"{name}.ipynb")
    print("wrote", name)
