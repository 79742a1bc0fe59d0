-- Digitallz Keywords schema, SQLite mirror of migrations/postgres (types mapped: UUID->BLOB, TIMESTAMPTZ/DATE->TEXT ISO-8601, JSONB->TEXT JSON).

CREATE TABLE platforms (
    name        TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 32 AND name NOT GLOB '*[^a-z0-9_]*'),
    description TEXT NOT NULL
);
INSERT INTO platforms (name, description) VALUES
    ('amazon', 'Amazon marketplace search'),
    ('etsy', 'Etsy marketplace search'),
    ('ebay', 'eBay marketplace search'),
    ('google', 'Web-search interest (Google Trends relative volume)'),
    ('benchmark', 'Reference forecasting series that are not marketplace keywords (e.g. M4 Weekly)');

CREATE TABLE users (
    id            BLOB PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE CHECK (instr(email, '@') > 1),
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'data_scientist', 'admin')),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE subscriptions (
    id                   BLOB PRIMARY KEY,
    user_id              BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan                 TEXT NOT NULL CHECK (plan IN ('free', 'pro', 'business', 'enterprise')),
    status               TEXT NOT NULL CHECK (status IN ('active', 'past_due', 'cancelled')),
    monthly_quota        INTEGER NOT NULL CHECK (monthly_quota >= 0),
    requests_used        INTEGER NOT NULL DEFAULT 0 CHECK (requests_used >= 0),
    current_period_start TEXT NOT NULL,
    current_period_end   TEXT NOT NULL,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK (current_period_end > current_period_start)
);
CREATE INDEX subscriptions_user ON subscriptions (user_id, created_at DESC);

-- Current snapshot per (platform, keyword), refreshed from keyword_observations on import.
CREATE TABLE keyword_data (
    id            BLOB PRIMARY KEY,
    platform      TEXT NOT NULL REFERENCES platforms (name),
    keyword       TEXT NOT NULL CHECK (length(keyword) BETWEEN 1 AND 200),
    search_volume REAL CHECK (search_volume >= 0),
    competition   REAL CHECK (competition BETWEEN 0 AND 100),
    cpc           REAL CHECK (cpc >= 0),
    trend_data    TEXT NOT NULL DEFAULT '[]',
    last_updated  TEXT NOT NULL,
    UNIQUE (platform, keyword)
);
-- Prefix search (`keyword LIKE 'tar%'`); SQLite uses it with case_sensitive_like or GLOB.
CREATE INDEX keyword_data_prefix ON keyword_data (keyword);

CREATE TABLE keyword_searches (
    id          BLOB PRIMARY KEY,
    user_id     BLOB REFERENCES users (id) ON DELETE CASCADE,
    platform    TEXT NOT NULL REFERENCES platforms (name),
    keyword     TEXT NOT NULL CHECK (length(keyword) BETWEEN 1 AND 200),
    results     TEXT NOT NULL DEFAULT '{}',
    searched_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX keyword_searches_user ON keyword_searches (user_id, searched_at DESC);

CREATE TABLE analytics (
    id          BLOB PRIMARY KEY,
    user_id     BLOB REFERENCES users (id) ON DELETE SET NULL,
    event       TEXT NOT NULL CHECK (length(event) BETWEEN 1 AND 100),
    properties  TEXT NOT NULL DEFAULT '{}',
    occurred_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX analytics_event ON analytics (event, occurred_at DESC);

CREATE TABLE cache_data (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX cache_data_expiry ON cache_data (expires_at);

-- Raw observations, one per (platform, keyword, period, source). The ML path reads these.
CREATE TABLE keyword_observations (
    id                  BLOB PRIMARY KEY,
    platform            TEXT NOT NULL REFERENCES platforms (name),
    keyword             TEXT NOT NULL CHECK (length(keyword) BETWEEN 1 AND 200),
    period_start        TEXT NOT NULL,
    search_volume       REAL CHECK (search_volume >= 0),
    listing_count       INTEGER CHECK (listing_count >= 0),
    price_median        REAL CHECK (price_median >= 0),
    price_p25           REAL CHECK (price_p25 >= 0),
    price_p75           REAL CHECK (price_p75 >= 0),
    review_count_median REAL CHECK (review_count_median >= 0),
    rating_mean         REAL CHECK (rating_mean BETWEEN 0 AND 5),
    top10_review_share  REAL CHECK (top10_review_share BETWEEN 0 AND 1),
    sponsored_share     REAL CHECK (sponsored_share BETWEEN 0 AND 1),
    cpc                 REAL CHECK (cpc >= 0),
    source              TEXT NOT NULL CHECK (length(source) BETWEEN 1 AND 200),
    collected_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (platform, keyword, period_start, source)
);
-- History by keyword is served by the unique index's (platform, keyword, period_start) prefix.

CREATE TABLE models (
    id                  BLOB PRIMARY KEY,
    name                TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    version             TEXT NOT NULL UNIQUE CHECK (length(version) BETWEEN 1 AND 100),
    kind                TEXT NOT NULL CHECK (kind IN ('forecaster', 'competition')),
    feature_schema_hash TEXT NOT NULL,
    metrics             TEXT NOT NULL DEFAULT '{}',
    artifact            TEXT NOT NULL,
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    active              INTEGER NOT NULL DEFAULT 0
);
-- At most one active model per kind.
CREATE UNIQUE INDEX models_one_active ON models (kind) WHERE active = 1;

CREATE TABLE predictions (
    id            BLOB PRIMARY KEY,
    platform      TEXT NOT NULL REFERENCES platforms (name),
    keyword       TEXT NOT NULL CHECK (length(keyword) BETWEEN 1 AND 200),
    model_version TEXT NOT NULL,
    data_as_of    TEXT NOT NULL,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    horizon       INTEGER NOT NULL CHECK (horizon BETWEEN 1 AND 104),
    -- per-step arrays of length `horizon`: {"mean": [...], "quantiles": {"0.025": [...], ...}}
    mean          TEXT NOT NULL,
    quantiles     TEXT NOT NULL
);
-- Latest prediction by keyword and model.
CREATE INDEX predictions_latest ON predictions (platform, keyword, model_version, created_at DESC);
