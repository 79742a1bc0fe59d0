#!/usr/bin/env python3
"""Where SQLite's time goes when the prediction writer inserts a batch (docs/benchmarks.md, "SQLite
prediction inserts": the embedded server's uncached tail). Outside our code, Python's built-in sqlite3 on the `predictions` schema of
migrations/sqlite/0001_init.sql, WAL and synchronous=NORMAL as `kwi` opens it: 500-row
transactions into a table already holding 50,000 rows, with the table as it is and with one index
or the other left out.

The rows are SYNTHETIC (random forecast values, horizons 1-60, two interval levels as JSON text,
keyword names shaped like the load benchmark's): this measures storage cost, not forecasts.

    python3 benches/sql/sqlite_predictions_insert.py [--batches 20]
"""
import argparse
import json
import os
import random
import sqlite3
import tempfile
import time
import uuid

ap = argparse.ArgumentParser()
ap.add_argument("--batches", type=int, default=20)
ap.add_argument("--seed", type=int, default=42)
a = ap.parse_args()
rng = random.Random(a.seed)


def rows(k):
    out = []
    for _ in range(k):
        h = rng.randint(1, 60)
        m = [rng.random() * 1000 for _ in range(h)]
        q = {"80": {"lo": [x * 0.9 for x in m], "hi": [x * 1.1 for x in m]},
             "95": {"lo": [x * 0.8 for x in m], "hi": [x * 1.2 for x in m]}}
        out.append((uuid.UUID(int=rng.getrandbits(128)).bytes, "benchmark",
                    f"m4 w{rng.randint(1, 359)} at {rng.randint(0, 2000)}", "builtin-snaive-v1",
                    "2024-11-24", "2026-11-25T17:00:00.123456789+00:00", h, json.dumps(m), json.dumps(q)))
    return out


def run(latest_index=True, primary_key=True):
    with tempfile.TemporaryDirectory() as d:
        c = sqlite3.connect(os.path.join(d, "p.db"), isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute(f"CREATE TABLE predictions (id BLOB {'PRIMARY KEY' if primary_key else ''}, platform TEXT, "
                  "keyword TEXT, model_version TEXT, data_as_of TEXT, created_at TEXT, horizon INTEGER, "
                  "mean TEXT, quantiles TEXT)")
        if latest_index:
            c.execute("CREATE INDEX predictions_latest ON predictions "
                      "(platform, keyword, model_version, created_at DESC)")
        sql = "INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?)"
        c.execute("BEGIN"); c.executemany(sql, rows(50_000)); c.execute("COMMIT")
        batches = [rows(500) for _ in range(a.batches)]
        t = time.perf_counter()
        for b in batches:
            c.execute("BEGIN"); c.executemany(sql, b); c.execute("COMMIT")
        return (time.perf_counter() - t) / a.batches * 1000


print(f"SQLite {sqlite3.sqlite_version}, {a.batches} transactions of 500 rows each, ms per transaction:")
print(f"  schema as migrated:           {run():.1f}")
print(f"  without predictions_latest:   {run(latest_index=False):.1f}")
print(f"  without the BLOB primary key: {run(primary_key=False):.1f}")
