#!/usr/bin/env python3
"""Pacing benchmark of the collectors: `kwi collect` of N keywords against a local fake of Etsy's
findAllListingsActive that allows R requests per wall-clock second (and answers 429 beyond).

The pacer wastes nothing when the run takes (N - 1) / R seconds plus start-up and provokes no
429. Reports: the whole run's wall time, the span from the first to the last request the fake
saw, 429s provoked, the largest number of requests seen in one second, and the `kwi` process's
CPU time (user + system) per request.

Keywords: distinct comma-separated phrases of the real Etsy listing titles in
data/marketplace/etsy/etsy_items_price.csv (see data/README.md), then numbered variants of them
if N is larger than what the file holds.

    python3 benches/collect/pacing.py --kwi target/release/kwi [--keywords 1000] [--rate 10]

Standard library only; the database is a fresh SQLite file in a temporary directory.
"""

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parents[2]


def keywords(n):
    out, seen = [], set()
    with open(ROOT / "data/marketplace/etsy/etsy_items_price.csv", newline="") as f:
        for row in csv.DictReader(f):
            for phrase in (row.get("listing") or "").split(","):
                k = " ".join(phrase.lower().split())
                if 3 <= len(k) <= 60 and k not in seen:
                    seen.add(k)
                    out.append(k)
    base = list(out)
    i = 2
    while len(out) < n:
        out.extend(f"{k} {i}" for k in base)
        i += 1
    return out[:n]


class Fake:
    def __init__(self, rate):
        self.rate = rate
        self.lock = threading.Lock()
        self.second = None
        self.in_second = 0
        self.max_in_second = 0
        self.requests = 0
        self.too_many = 0
        self.first = None
        self.last = None


def handler(fake):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            now = time.time()
            with fake.lock:
                fake.requests += 1
                fake.first = fake.first or now
                fake.last = now
                sec = int(now)
                if sec != fake.second:
                    fake.second, fake.in_second = sec, 0
                fake.in_second += 1
                fake.max_in_second = max(fake.max_in_second, fake.in_second)
                over = fake.in_second > fake.rate
                remaining = max(fake.rate - fake.in_second, 0)
                if over:
                    fake.too_many += 1
            if over:
                body = b'{"error":"Exceeded per second rate limit"}'
                self.send_response(429)
                self.send_header("retry-after", "1")
            else:
                q = parse_qs(urlparse(self.path).query)
                kw = q.get("keywords", [""])[0]
                limit = int(q.get("limit", ["100"])[0])
                count = 40 * len(kw)
                results = [
                    {
                        "listing_id": 1000 + i,
                        "shop_id": i % 7,
                        "title": f"{kw} {i}",
                        "price": {"amount": 500 + 100 * (i % 11), "divisor": 100, "currency_code": "USD"},
                        "num_favorers": i,
                        "views": 0,
                        "tags": ["a", "b"],
                    }
                    for i in range(min(limit, count))
                ]
                body = json.dumps({"count": count, "results": results}).encode()
                self.send_response(200)
                self.send_header("x-limit-per-second", str(fake.rate))
                self.send_header("x-remaining-this-second", str(remaining))
                self.send_header("x-limit-per-day", "10000")
                self.send_header("x-remaining-today", "9000")
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return H


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kwi", default=str(ROOT / "target/release/kwi"))
    ap.add_argument("--keywords", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=10)
    args = ap.parse_args()

    fake = Fake(args.rate)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(fake))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"

    with tempfile.TemporaryDirectory() as tmp:
        kw_file = Path(tmp) / "keywords.txt"
        kw_file.write_text("\n".join(keywords(args.keywords)) + "\n")
        env = {k: v for k, v in os.environ.items() if k not in ("KWI_DATABASE_URL", "KWI_REDIS_URL")}
        env.update(
            KWI_DATA_DIR=str(Path(tmp) / "data"),
            KWI_ETSY_BASE_URL=url,
            KWI_ETSY_API_KEY="bench:secret",
            KWI_ETSY_PER_SECOND=str(args.rate),
            RUST_LOG="warn",
        )
        # Migrations first, so the timed run is the collection.
        subprocess.run([args.kwi, "migrate"], env=env, check=True, capture_output=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time()
        run = subprocess.run(
            [args.kwi, "collect", "--source", "etsy", "--keywords-file", str(kw_file), "--patience-secs", "5"],
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.time() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server.shutdown()
    if run.returncode != 0:
        sys.exit(f"kwi collect failed:\n{run.stdout}\n{run.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    minimum = (args.keywords - 1) / args.rate
    span = (fake.last or 0) - (fake.first or 0)
    print(run.stdout.strip())
    print(f"keywords: {args.keywords}; allowed {args.rate} req/s; minimum {minimum:.1f} s")
    print(f"wall (kwi collect, start to exit): {wall:.2f} s ({100 * (wall / minimum - 1):+.1f} % over the minimum)")
    print(f"first to last request at the fake: {span:.2f} s ({100 * (span / minimum - 1):+.1f} %)")
    print(f"requests: {fake.requests}; 429s provoked: {fake.too_many}; most in one second: {fake.max_in_second}")
    print(f"kwi CPU: {cpu:.2f} s user+system = {1000 * cpu / max(fake.requests, 1):.2f} ms per request")


if __name__ == "__main__":
    main()
