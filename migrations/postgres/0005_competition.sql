-- Competition scores and trend insights, recomputed as a whole by `kwi-train insights` (or the
-- server's start-up job) in one transaction; the API reads them, never computes them.
CREATE TABLE competition_scores (
    platform      TEXT NOT NULL REFERENCES platforms (name),
    keyword       TEXT NOT NULL CHECK (length(keyword) BETWEEN 1 AND 200),
    score         DOUBLE PRECISION NOT NULL CHECK (score BETWEEN 0 AND 100),
    band          TEXT NOT NULL CHECK (band IN ('low', 'medium', 'high', 'very high')),
    -- [{"factor", "label", "points"}], summing to score minus the model's baseline
    contributions JSONB NOT NULL,
    model_version TEXT NOT NULL,
    synthetic     BOOLEAN NOT NULL,
    computed_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, keyword)
);

CREATE TABLE keyword_insights (
    platform                TEXT NOT NULL REFERENCES platforms (name),
    keyword                 TEXT NOT NULL CHECK (length(keyword) BETWEEN 1 AND 200),
    direction               TEXT NOT NULL CHECK (direction IN ('rising', 'falling', 'flat')),
    growth_pct              DOUBLE PRECISION NOT NULL,
    current                 DOUBLE PRECISION NOT NULL,
    forecast_end            DOUBLE PRECISION NOT NULL,
    horizon                 INTEGER NOT NULL CHECK (horizon BETWEEN 1 AND 104),
    peak                    JSONB,
    anomaly                 JSONB,
    opportunity             DOUBLE PRECISION CHECK (opportunity BETWEEN 0 AND 100),
    opportunity_explanation TEXT,
    model_version           TEXT NOT NULL,
    computed_at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (platform, keyword)
);
-- GET /v1/trends: movers of one direction by growth.
CREATE INDEX keyword_insights_trends ON keyword_insights (direction, growth_pct);
