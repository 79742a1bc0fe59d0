-- Collectors: the durable job queue, its dead letters, the raw responses kept for replay and the
-- daily request budgets shared by every worker.

CREATE TABLE collect_jobs (
    id          UUID PRIMARY KEY,
    idem_key    TEXT NOT NULL UNIQUE,            -- source:keyword:period; enqueueing twice is a no-op
    source      TEXT NOT NULL CHECK (source IN ('etsy', 'ebay', 'amazon')),
    keyword     TEXT NOT NULL,
    period      DATE NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_at      TIMESTAMPTZ NOT NULL,            -- not claimed before
    lease_until TIMESTAMPTZ,                     -- a running job whose lease has passed is claimable again
    worker      TEXT,
    last_error  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX collect_jobs_ready ON collect_jobs (state, run_at);

CREATE TABLE collect_dead_letters (
    id          UUID PRIMARY KEY,
    job_id      UUID NOT NULL REFERENCES collect_jobs (id) ON DELETE CASCADE,
    source      TEXT NOT NULL,
    keyword     TEXT NOT NULL,
    error       TEXT NOT NULL,
    body_sample TEXT,                            -- the first bytes of the offending body
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE collect_raw (
    id         UUID PRIMARY KEY,
    job_id     UUID NOT NULL REFERENCES collect_jobs (id) ON DELETE CASCADE,
    source     TEXT NOT NULL,
    url        TEXT NOT NULL,                    -- without credentials
    status     INTEGER NOT NULL,
    body_zstd  BYTEA NOT NULL,
    fetched_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX collect_raw_job ON collect_raw (job_id);

CREATE TABLE collect_budgets (
    source     TEXT NOT NULL,
    credential TEXT NOT NULL,                    -- hex SHA-256 prefix of the credential, never the credential
    day        DATE NOT NULL,                    -- UTC
    used       INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (source, credential, day)
);
