-- Accounts and access: plans, users (roles customer/analyst/admin), subscriptions, API keys,
-- refresh tokens, OpenID Connect identities, usage counters, search history and the audit log.
-- The seed's users/subscriptions/keyword_searches tables are altered in place (their rows kept).

CREATE TABLE plans (
    name                TEXT PRIMARY KEY CHECK (name IN ('free', 'pro', 'business', 'internal')),
    monthly_lookups     BIGINT CHECK (monthly_lookups >= 0),          -- NULL: unlimited
    requests_per_minute BIGINT  NOT NULL CHECK (requests_per_minute BETWEEN 1 AND 100000000),
    burst               BIGINT  NOT NULL CHECK (burst BETWEEN 1 AND 100000000),
    max_batch           BIGINT  NOT NULL CHECK (max_batch BETWEEN 1 AND 1000),
    history_days        BIGINT  NOT NULL CHECK (history_days BETWEEN 1 AND 3650),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO plans (name, monthly_lookups, requests_per_minute, burst, max_batch, history_days) VALUES
    ('free', 500, 10, 10, 10, 30),
    ('pro', 20000, 120, 60, 200, 180),
    ('business', 500000, 600, 300, 1000, 730),
    ('internal', NULL, 100000000, 100000000, 1000, 3650);

ALTER TABLE users DROP CONSTRAINT users_role_check;
UPDATE users SET role = CASE role WHEN 'user' THEN 'customer' WHEN 'data_scientist' THEN 'analyst' ELSE role END;
ALTER TABLE users
    ALTER COLUMN role SET DEFAULT 'customer',
    ADD CONSTRAINT users_role_check CHECK (role IN ('customer', 'analyst', 'admin')),
    ALTER COLUMN password_hash DROP NOT NULL,   -- users who only sign in through OpenID Connect
    ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT false,
    -- Bumped on a password change: access tokens carry it, so older ones are refused.
    ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users DROP CONSTRAINT users_email_key;
UPDATE users SET email = lower(email);
CREATE UNIQUE INDEX users_email_ci ON users (lower(email));

ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_plan_check;
UPDATE subscriptions SET plan = 'business' WHERE plan = 'enterprise';
ALTER TABLE subscriptions
    ADD CONSTRAINT subscriptions_plan_fk FOREIGN KEY (plan) REFERENCES plans (name),
    ADD COLUMN external_billing_id TEXT CHECK (length(external_billing_id) BETWEEN 1 AND 200),
    DROP COLUMN monthly_quota,   -- the plan holds the quota
    DROP COLUMN requests_used;   -- usage_counters holds the usage
CREATE UNIQUE INDEX subscriptions_one_active ON subscriptions (user_id) WHERE status = 'active';

CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix       TEXT NOT NULL,                 -- shown in listings: kwi_live_ and 4 characters
    secret_hash  TEXT NOT NULL UNIQUE,          -- hex SHA-256 of the whole key; the key itself is never stored
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ,                   -- set when rotated: the grace period's end
    revoked_at   TIMESTAMPTZ
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at DESC);

CREATE TABLE refresh_tokens (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   UUID NOT NULL,                  -- every rotation of one login
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE oauth_identities (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    email      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (issuer, subject)
);

CREATE TABLE usage_counters (
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    period     TEXT NOT NULL CHECK (period ~ '^[0-9]{4}-[0-9]{2}$'),   -- calendar month, UTC
    lookups    BIGINT NOT NULL DEFAULT 0 CHECK (lookups >= 0),
    requests   BIGINT NOT NULL DEFAULT 0 CHECK (requests >= 0),
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, period)
);

ALTER TABLE keyword_searches RENAME COLUMN searched_at TO created_at;
DROP INDEX keyword_searches_user;
CREATE INDEX keyword_searches_user ON keyword_searches (user_id, id DESC);
CREATE INDEX keyword_searches_recent ON keyword_searches (created_at, platform);

CREATE TABLE audit_log (
    id     UUID PRIMARY KEY,                    -- UUID v7: time-ordered
    at     TIMESTAMPTZ NOT NULL,
    actor  UUID,                                -- no foreign key: the trail outlives the user
    action TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target TEXT,
    detail JSONB NOT NULL DEFAULT '{}',
    ip     TEXT
);
CREATE INDEX audit_log_action ON audit_log (action, id DESC);

-- Secrets the instances share (the access-token signing key), created on first start.
CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
