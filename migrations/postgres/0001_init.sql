-- Digitallz Keywords schema (PostgreSQL is the reference; migrations/sqlite mirrors it).

CREATE TABLE platforms (
    name        TEXT PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,31}$'),
    description TEXT NOT NULL
);
INSERT INTO platforms (name, description) VALUES
    ('amazon', 'Amazon marketplace search'),
    ('etsy', 'Etsy marketplace search'),
    ('ebay', 'eBay marketplace search'),
    ('google', 'Web-search interest (Google Trends relative volume)'),
    ('benchmark', 'Reference forecasting series that are not marketplace keywords (e.g. M4 Weekly)');

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE CHECK (position('@' IN email) > 1),
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'data_scientist', 'admin')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
    id                   UUID PRIMARY KEY,
    user_id              UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    plan                 TEXT NOT NULL CHECK (plan IN ('free', 'pro', 'business', 'enterprise')),
    status               TEXT NOT NULL CHECK (status IN ('active', 'past_due', 'cancelled')),
    monthly_quota        INTEGER NOT NULL CHECK (monthly_quota >= 0),
    requests_used        INTEGER NOT NULL DEFAULT 0 CHECK (requests_used >= 0),
    current_period_start TIMESTAMPTZ NOT NULL,
    current_period_end   TIMESTAMPTZ NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (current_period_end > current_period_start)
);
CREATE INDEX subscriptions_user ON subscriptions (user_id, created_at DESC);

-- Current snapshot per (platform, keyword), refreshed from keyword_observations on import.
CREATE TABLE keyword_data (
    id            UUID PRIMARY KEY,
    platform      TEXT NOT NULL REFERENCES platforms (name),
    keyword       TEXT NOT NULL CHECK (length(keyword) BETWEEN 1 AND 200),
    search_volume DOUBLE PRECISION CHECK (search_volume >= 0),
    competition   DOUBLE PRECISION CHECK (competition BETWEEN 0 AND 100),
    cpc           DOUBLE PRECISION CHECK (cpc >= 0),
    trend_data    JSONB NOT NULL DEFAULT '[]',
    last_updated  TIMESTAMPTZ NOT NULL,
    UNIQUE (platform, keyword)
);
-- Prefix search (`keyword LIKE 'tar%'`) within a platform and across platforms.
CREATE INDEX keyword_data_prefix ON keyword_data (keyword text_pattern_ops);

CREATE TABLE keyword_searches (
    id          UUID PRIMARY KEY,
    user_id     UUID REFERENCES users (id) ON DELETE CASCADE,
    platform    TEXT NOT NULL REFERENCES platforms (name),
    keyword     TEXT NOT NULL CHECK (length(keyword) BETWEEN 1 AND 200),
    results     JSONB NOT NULL DEFAULT '{}',
    searched_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX keyword_searches_user ON keyword_searches (user_id, searched_at DESC);

CREATE TABLE analytics (
    id          UUID PRIMARY KEY,
    user_id     UUID REFERENCES users (id) ON DELETE SET NULL,
    event       TEXT NOT NULL CHECK (length(event) BETWEEN 1 AND 100),
    properties  JSONB NOT NULL DEFAULT '{}',
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX analytics_event ON analytics (event, occurred_at DESC);

CREATE TABLE cache_data (
    key        TEXT PRIMARY KEY,
    value      JSONB NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX cache_data_expiry ON cache_data (expires_at);

-- Raw observations, one per (platform, keyword, period, source). The ML path reads these.
CREATE TABLE keyword_observations (
    id                  UUID PRIMARY KEY,
    platform            TEXT NOT NULL REFERENCES platforms (name),
    keyword             TEXT NOT NULL CHECK (length(keyword) BETWEEN 1 AND 200),
    period_start        DATE NOT NULL,
    search_volume       DOUBLE PRECISION CHECK (search_volume >= 0),
    listing_count       BIGINT CHECK (listing_count >= 0),
    price_median        DOUBLE PRECISION CHECK (price_median >= 0),
    price_p25           DOUBLE PRECISION CHECK (price_p25 >= 0),
    price_p75           DOUBLE PRECISION CHECK (price_p75 >= 0),
    review_count_median DOUBLE PRECISION CHECK (review_count_median >= 0),
    rating_mean         DOUBLE PRECISION CHECK (rating_mean BETWEEN 0 AND 5),
    top10_review_share  DOUBLE PRECISION CHECK (top10_review_share BETWEEN 0 AND 1),
    sponsored_share     DOUBLE PRECISION CHECK (sponsored_share BETWEEN 0 AND 1),
    cpc                 DOUBLE PRECISION CHECK (cpc >= 0),
    source              TEXT NOT NULL CHECK (length(source) BETWEEN 1 AND 200),
    collected_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (platform, keyword, period_start, source)
);
-- History by keyword is served by the unique index's (platform, keyword, period_start) prefix.

CREATE TABLE models (
    id                  UUID PRIMARY KEY,
    name                TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    version             TEXT NOT NULL UNIQUE CHECK (length(version) BETWEEN 1 AND 100),
    kind                TEXT NOT NULL CHECK (kind IN ('forecaster', 'competition')),
    feature_schema_hash TEXT NOT NULL,
    metrics             JSONB NOT NULL DEFAULT '{}',
    artifact            TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    active              BOOLEAN NOT NULL DEFAULT FALSE
);
-- At most one active model per kind.
CREATE UNIQUE INDEX models_one_active ON models (kind) WHERE active;

CREATE TABLE predictions (
    id            UUID PRIMARY KEY,
    platform      TEXT NOT NULL REFERENCES platforms (name),
    keyword       TEXT NOT NULL CHECK (length(keyword) BETWEEN 1 AND 200),
    model_version TEXT NOT NULL,
    data_as_of    DATE NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    horizon       INTEGER NOT NULL CHECK (horizon BETWEEN 1 AND 104),
    -- per-step arrays of length `horizon`: {"mean": [...], "quantiles": {"0.025": [...], ...}}
    mean          JSONB NOT NULL,
    quantiles     JSONB NOT NULL
);
-- Latest prediction by keyword and model.
CREATE INDEX predictions_latest ON predictions (platform, keyword, model_version, created_at DESC);
