#!/usr/bin/env bash
# PostgreSQL-side timings of the store statements (docs/benchmarks.md, "Store statements: PostgreSQL"):
#   1. inserting 5,000 forecasts (1-104 steps, two levels) as JSONB from JSON text, as `json` from
#      text, and as float8[] from values already in binary form (what a binary array bind hands over);
#   2. the volume read for 64 keywords: a grouped join, a LATERAL aggregation over the
#      observations, and the arrays kept on the snapshot row the store reads (migration 0008);
#   3. the observations export filtered to one keyword: `($2 IS NULL OR keyword IN (...))` vs the
#      two-branch form the store uses;
#   4. the whole observations export with and without JIT (kwi's sessions run with jit off).
# 2 and 3 run on a store of $KEYS keywords (default 2,000 x 104 weeks, made from M4 Weekly by
# benches/load/make_keywords.py and imported with `kwi import`), as prepared statements forced to
# their generic plan (what a server's reused statements get); each is timed with EXPLAIN ANALYZE,
# best of 3, with the server's default `jit = on` ("before") and as kwi's sessions run now (jit off).
#
#   cargo build --profile perf --bin kwi   # or any build of kwi
#   KWI_BIN=target/perf/kwi benches/sql/run.sh
#
# Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) and python3; the keyword panel is
# built from data/m4/Weekly-train.csv (benches/load/make_keywords.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${KWI_BIN:-target/perf/kwi}
KEYS=${KEYS:-2000}
PSQL=(psql -h 127.0.0.1 -U postgres -X -q -v ON_ERROR_STOP=1)
[ -x "$BIN" ] || { echo "missing $BIN (cargo build --profile perf --bin kwi)" >&2; exit 1; }
db="kwi_sqlbench_$$"
data=$(mktemp -d)
trap '"${PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$data"' EXIT
"${PSQL[@]}" -c "CREATE DATABASE $db"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(psql -h 127.0.0.1 -U postgres -Atc 'SHOW server_version')"

echo "--- 1. inserting 5,000 forecasts"
"${PSQL[@]}" -d "$db" <<'SQL' | grep -E '^(jsonb|json|float8)|Time'
CREATE TEMP TABLE src AS
  SELECT i, (SELECT array_agg(random() * 1000) FROM generate_series(1, 1 + (i % 104))) AS arr
  FROM generate_series(1, 5000) i;
CREATE TEMP TABLE txt AS
  SELECT i, arr, array_to_json(arr)::text AS mean_text,
    json_build_object('80', json_build_object('lo', arr, 'hi', arr),
                      '95', json_build_object('lo', arr, 'hi', arr))::text AS q_text
  FROM src;
CREATE TABLE as_jsonb (i int, mean jsonb, q jsonb);
CREATE TABLE as_json (i int, mean json, q json);
CREATE TABLE as_arrays (i int, mean float8[], lo float8[], hi float8[]);
\timing on
\echo jsonb from JSON text
INSERT INTO as_jsonb SELECT i, mean_text::jsonb, q_text::jsonb FROM txt;
\echo json from JSON text
INSERT INTO as_json SELECT i, mean_text::json, q_text::json FROM txt;
\echo float8[] from binary values
INSERT INTO as_arrays SELECT i, arr, arr || arr, arr || arr FROM txt;
SQL

echo "--- store: $KEYS keywords"
python3 benches/load/make_keywords.py --count "$KEYS" "$data/panel.csv" "$data/keys.txt" >/dev/null 2>&1
KWI_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" KWI_DATA_DIR="$data" "$BIN" import --quiet "$data/panel.csv"
# The first 64 keys as [[platform, keyword], ...] and the first keyword as [keyword], quoted for SQL.
python3 - "$data/keys.txt" "$data" <<'PY'
import json, sys, urllib.parse
keys = [urllib.parse.unquote(l.strip()).split("/", 1) for l in open(sys.argv[1])]
sql = lambda v: json.dumps(v).replace("'", "''")
open(f"{sys.argv[2]}/keys64.json", "w").write(sql(keys[:64]))
open(f"{sys.argv[2]}/one.json", "w").write(sql([keys[0][1]]))
PY
keys64=$(cat "$data/keys64.json"); one=$(cat "$data/one.json")

best() { # name, EXECUTE statement[, jit setting]: best execution time of 3 runs
  local t
  t=$(for _ in 1 2 3; do
        "${PSQL[@]}" -d "$db" -At -c "SET plan_cache_mode = force_generic_plan" -c "SET jit = ${3:-on}" -c "$PREPARE" \
          -c "EXPLAIN (ANALYZE, FORMAT JSON) $2" |
          python3 -c 'import json, sys; print(json.loads(sys.stdin.read())[0]["Execution Time"])'
      done | sort -g | head -1)
  echo "$1: $t ms"
}
"${PSQL[@]}" -d "$db" -c "VACUUM ANALYZE keyword_observations" -c "VACUUM ANALYZE keyword_data"

echo "--- 2. volume read, 64 keywords"
PREPARE="PREPARE q(text) AS SELECT (k.ord - 1)::int8, array_agg(o.period_start ORDER BY o.period_start, o.source), \
  array_agg(o.search_volume ORDER BY o.period_start, o.source) FROM jsonb_array_elements(\$1::jsonb) WITH ORDINALITY AS k(j, ord) \
  JOIN keyword_observations o ON o.platform = k.j->>0 AND o.keyword = k.j->>1 WHERE o.search_volume IS NOT NULL GROUP BY k.ord;"
best "grouped join (before)" "EXECUTE q('$keys64')"
PREPARE="PREPARE q(text) AS SELECT (k.ord - 1)::int8, v.periods, v.volumes FROM jsonb_array_elements(\$1::jsonb) WITH ORDINALITY AS k(j, ord) \
  CROSS JOIN LATERAL (SELECT array_agg(o.period_start ORDER BY o.period_start, o.source) AS periods, \
  array_agg(o.search_volume ORDER BY o.period_start, o.source) AS volumes FROM keyword_observations o \
  WHERE o.platform = k.j->>0 AND o.keyword = k.j->>1 AND o.search_volume IS NOT NULL) v WHERE v.periods IS NOT NULL;"
best "LATERAL aggregation over the observations, jit off as kwi's sessions" "EXECUTE q('$keys64')" off
PREPARE="PREPARE q(text) AS SELECT (k.ord - 1)::int8, d.volume_periods, d.volume_values FROM jsonb_array_elements(\$1::jsonb) WITH ORDINALITY AS k(j, ord) \
  CROSS JOIN LATERAL (SELECT volume_periods, volume_values FROM keyword_data d WHERE d.platform = k.j->>0 AND d.keyword = k.j->>1 OFFSET 0) d \
  WHERE cardinality(d.volume_values) > 0;"
best "arrays on the snapshot row (store/src/postgres.rs VOLUMES_MANY), jit off" "EXECUTE q('$keys64')" off

echo "--- 3. observations export, one keyword"
PREPARE="PREPARE q(text, text, date, date) AS SELECT platform, keyword, period_start, search_volume FROM keyword_observations \
  WHERE (\$1::text IS NULL OR platform = \$1) AND (\$2::text IS NULL OR keyword IN (SELECT jsonb_array_elements_text(\$2::jsonb))) \
  AND (\$3::date IS NULL OR period_start >= \$3) AND (\$4::date IS NULL OR period_start <= \$4) ORDER BY platform, keyword, period_start, source;"
best "one condition (before)" "EXECUTE q(NULL, '$one', NULL, NULL)"
PREPARE="PREPARE q(text, text, date, date) AS SELECT platform, keyword, period_start, search_volume FROM ( \
  SELECT o.* FROM keyword_observations o WHERE \$2::text IS NULL AND (\$1::text IS NULL OR o.platform = \$1) UNION ALL \
  SELECT o.* FROM (SELECT DISTINCT keyword FROM jsonb_array_elements_text(\$2::jsonb) AS k(keyword)) k \
  JOIN platforms p ON (\$1::text IS NULL OR p.name = \$1) \
  CROSS JOIN LATERAL (SELECT * FROM keyword_observations o WHERE o.platform = p.name AND o.keyword = k.keyword OFFSET 0) o) o \
  WHERE (\$3::date IS NULL OR o.period_start >= \$3) AND (\$4::date IS NULL OR o.period_start <= \$4) ORDER BY platform, keyword, period_start, source;"
best "two branches (store/src/postgres.rs export_rows!), jit on" "EXECUTE q(NULL, '$one', NULL, NULL)"
best "two branches, jit off as kwi's sessions (PgStore::connect)" "EXECUTE q(NULL, '$one', NULL, NULL)" off
echo "--- 4. observations export, every row (the two-branch statement)"
best "jit on" "EXECUTE q(NULL, NULL, NULL, NULL)"
best "jit off as kwi's sessions" "EXECUTE q(NULL, NULL, NULL, NULL)" off
