-- Mirror of migrations/postgres/0013_reforecast.sql. SQLite cannot change a CHECK constraint in
-- place, so collect_jobs and the two tables that reference it are rebuilt with their rows copied:
-- the new tables are made first, the old ones dropped children first (so no ON DELETE action
-- fires), then renamed into place (which retargets the foreign keys).

CREATE TABLE collect_jobs_new (
    id          BLOB PRIMARY KEY,
    idem_key    TEXT NOT NULL UNIQUE,            -- source:keyword:period; enqueueing twice is a no-op
    source      TEXT NOT NULL CHECK (source IN ('etsy', 'ebay', 'amazon', 'reforecast')),
    keyword     TEXT NOT NULL,                   -- a re-forecast chunk: the run's name
    period      TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_at      TEXT NOT NULL,            -- not claimed before
    lease_until TEXT,                     -- a running job whose lease has passed is claimable again
    worker      TEXT,
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    payload     TEXT,                     -- a re-forecast chunk's keywords (JSON)
    CHECK ((source = 'reforecast') = (payload IS NOT NULL))
);
INSERT INTO collect_jobs_new (id, idem_key, source, keyword, period, state, attempts, run_at,
                              lease_until, worker, last_error, created_at, updated_at)
    SELECT id, idem_key, source, keyword, period, state, attempts, run_at, lease_until, worker,
           last_error, created_at, updated_at FROM collect_jobs;

CREATE TABLE collect_dead_letters_new (
    id          BLOB PRIMARY KEY,
    job_id      BLOB NOT NULL REFERENCES collect_jobs_new (id) ON DELETE CASCADE,
    source      TEXT NOT NULL,
    keyword     TEXT NOT NULL,
    error       TEXT NOT NULL,
    body_sample TEXT,                            -- the first bytes of the offending body
    created_at  TEXT NOT NULL
);
INSERT INTO collect_dead_letters_new SELECT id, job_id, source, keyword, error, body_sample, created_at
    FROM collect_dead_letters;

CREATE TABLE collect_raw_new (
    id         BLOB PRIMARY KEY,
    job_id     BLOB NOT NULL REFERENCES collect_jobs_new (id) ON DELETE CASCADE,
    source     TEXT NOT NULL,
    url        TEXT NOT NULL,                    -- without credentials
    status     INTEGER NOT NULL,
    body_zstd  BLOB NOT NULL,
    fetched_at TEXT NOT NULL
);
INSERT INTO collect_raw_new SELECT id, job_id, source, url, status, body_zstd, fetched_at FROM collect_raw;

DROP TABLE collect_raw;
DROP TABLE collect_dead_letters;
DROP TABLE collect_jobs;
ALTER TABLE collect_jobs_new RENAME TO collect_jobs;
ALTER TABLE collect_dead_letters_new RENAME TO collect_dead_letters;
ALTER TABLE collect_raw_new RENAME TO collect_raw;
CREATE INDEX collect_jobs_ready ON collect_jobs (state, run_at);
CREATE INDEX collect_raw_job ON collect_raw (job_id);
