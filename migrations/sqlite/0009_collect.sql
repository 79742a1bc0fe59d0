-- Mirror of migrations/postgres/0011_collect.sql.

CREATE TABLE collect_jobs (
    id          BLOB PRIMARY KEY,
    idem_key    TEXT NOT NULL UNIQUE,            -- source:keyword:period; enqueueing twice is a no-op
    source      TEXT NOT NULL CHECK (source IN ('etsy', 'ebay', 'amazon')),
    keyword     TEXT NOT NULL,
    period      TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_at      TEXT NOT NULL,            -- not claimed before
    lease_until TEXT,                     -- a running job whose lease has passed is claimable again
    worker      TEXT,
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX collect_jobs_ready ON collect_jobs (state, run_at);

CREATE TABLE collect_dead_letters (
    id          BLOB PRIMARY KEY,
    job_id      BLOB NOT NULL REFERENCES collect_jobs (id) ON DELETE CASCADE,
    source      TEXT NOT NULL,
    keyword     TEXT NOT NULL,
    error       TEXT NOT NULL,
    body_sample TEXT,                            -- the first bytes of the offending body
    created_at  TEXT NOT NULL
);

CREATE TABLE collect_raw (
    id         BLOB PRIMARY KEY,
    job_id     BLOB NOT NULL REFERENCES collect_jobs (id) ON DELETE CASCADE,
    source     TEXT NOT NULL,
    url        TEXT NOT NULL,                    -- without credentials
    status     INTEGER NOT NULL,
    body_zstd  BLOB NOT NULL,
    fetched_at TEXT NOT NULL
);
CREATE INDEX collect_raw_job ON collect_raw (job_id);

CREATE TABLE collect_budgets (
    source     TEXT NOT NULL,
    credential TEXT NOT NULL,                    -- hex SHA-256 prefix of the credential, never the credential
    day        TEXT NOT NULL,                    -- UTC
    used       INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (source, credential, day)
);
