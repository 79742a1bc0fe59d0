-- Accounts and access (mirror of migrations/postgres/0009_accounts.sql). SQLite cannot change a
-- CHECK constraint in place, so users, subscriptions, keyword_searches and analytics are rebuilt
-- with their rows copied: the new tables are made first, the old ones dropped children first (so
-- no ON DELETE action fires), then renamed into place (which retargets the foreign keys).

CREATE TABLE plans (
    name                TEXT PRIMARY KEY CHECK (name IN ('free', 'pro', 'business', 'internal')),
    monthly_lookups     INTEGER CHECK (monthly_lookups >= 0),
    requests_per_minute INTEGER NOT NULL CHECK (requests_per_minute BETWEEN 1 AND 100000000),
    burst               INTEGER NOT NULL CHECK (burst BETWEEN 1 AND 100000000),
    max_batch           INTEGER NOT NULL CHECK (max_batch BETWEEN 1 AND 1000),
    history_days        INTEGER NOT NULL CHECK (history_days BETWEEN 1 AND 3650),
    updated_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO plans (name, monthly_lookups, requests_per_minute, burst, max_batch, history_days) VALUES
    ('free', 500, 10, 10, 10, 30),
    ('pro', 20000, 120, 60, 200, 180),
    ('business', 500000, 600, 300, 1000, 730),
    ('internal', NULL, 100000000, 100000000, 1000, 3650);

CREATE TABLE users_new (
    id            BLOB PRIMARY KEY,
    email         TEXT NOT NULL COLLATE NOCASE UNIQUE CHECK (instr(email, '@') > 1),
    password_hash TEXT,
    role          TEXT NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'analyst', 'admin')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    session_epoch INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
INSERT INTO users_new (id, email, password_hash, role, created_at, updated_at)
    SELECT id, lower(email), password_hash,
           CASE role WHEN 'user' THEN 'customer' WHEN 'data_scientist' THEN 'analyst' ELSE role END,
           created_at, updated_at
    FROM users;

CREATE TABLE subscriptions_new (
    id                   BLOB PRIMARY KEY,
    user_id              BLOB NOT NULL REFERENCES users_new (id) ON DELETE CASCADE,
    plan                 TEXT NOT NULL REFERENCES plans (name),
    status               TEXT NOT NULL CHECK (status IN ('active', 'past_due', 'cancelled')),
    external_billing_id  TEXT CHECK (length(external_billing_id) BETWEEN 1 AND 200),
    current_period_start TEXT NOT NULL,
    current_period_end   TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    CHECK (current_period_end > current_period_start)
);
INSERT INTO subscriptions_new (id, user_id, plan, status, current_period_start, current_period_end, created_at)
    SELECT id, user_id, CASE plan WHEN 'enterprise' THEN 'business' ELSE plan END, status,
           current_period_start, current_period_end, created_at
    FROM subscriptions;

CREATE TABLE keyword_searches_new (
    id         BLOB PRIMARY KEY,
    user_id    BLOB REFERENCES users_new (id) ON DELETE CASCADE,
    platform   TEXT NOT NULL REFERENCES platforms (name),
    keyword    TEXT NOT NULL CHECK (length(keyword) BETWEEN 1 AND 200),
    results    TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
INSERT INTO keyword_searches_new (id, user_id, platform, keyword, results, created_at)
    SELECT id, user_id, platform, keyword, results, searched_at FROM keyword_searches;

CREATE TABLE analytics_new (
    id          BLOB PRIMARY KEY,
    user_id     BLOB REFERENCES users_new (id) ON DELETE SET NULL,
    event       TEXT NOT NULL CHECK (length(event) BETWEEN 1 AND 100),
    properties  TEXT NOT NULL DEFAULT '{}',
    occurred_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
INSERT INTO analytics_new SELECT id, user_id, event, properties, occurred_at FROM analytics;

DROP TABLE analytics;
DROP TABLE keyword_searches;
DROP TABLE subscriptions;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
ALTER TABLE subscriptions_new RENAME TO subscriptions;
ALTER TABLE keyword_searches_new RENAME TO keyword_searches;
ALTER TABLE analytics_new RENAME TO analytics;
CREATE INDEX subscriptions_user ON subscriptions (user_id, created_at DESC);
CREATE UNIQUE INDEX subscriptions_one_active ON subscriptions (user_id) WHERE status = 'active';
CREATE INDEX keyword_searches_user ON keyword_searches (user_id, id DESC);
CREATE INDEX keyword_searches_recent ON keyword_searches (created_at, platform);
CREATE INDEX analytics_event ON analytics (event, occurred_at DESC);

CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    expires_at   TEXT,
    revoked_at   TEXT
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at DESC);

CREATE TABLE refresh_tokens (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   BLOB NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    revoked_at  TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE oauth_identities (
    id         BLOB PRIMARY KEY,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    email      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (issuer, subject)
);

CREATE TABLE usage_counters (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    period     TEXT NOT NULL CHECK (period GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]'),
    lookups    INTEGER NOT NULL DEFAULT 0 CHECK (lookups >= 0),
    requests   INTEGER NOT NULL DEFAULT 0 CHECK (requests >= 0),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (user_id, period)
);

CREATE TABLE audit_log (
    id     BLOB PRIMARY KEY,
    at     TEXT NOT NULL,
    actor  BLOB,
    action TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target TEXT,
    detail TEXT NOT NULL DEFAULT '{}',
    ip     TEXT
);
CREATE INDEX audit_log_action ON audit_log (action, id DESC);

CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL
);
