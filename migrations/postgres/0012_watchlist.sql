-- Watched keywords: the scheduler queues a collection of each one per period of its cadence.

CREATE TABLE watchlist (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source      TEXT NOT NULL CHECK (source IN ('etsy', 'ebay', 'amazon')),
    keyword     TEXT NOT NULL,
    cadence     TEXT NOT NULL CHECK (cadence IN ('daily', 'weekly')),
    last_period DATE,                           -- the latest period a job was queued for
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (user_id, source, keyword)
);
CREATE INDEX watchlist_due ON watchlist (last_period);
