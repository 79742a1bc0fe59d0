-- Mirror of migrations/postgres/0012_watchlist.sql.

CREATE TABLE watchlist (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source      TEXT NOT NULL CHECK (source IN ('etsy', 'ebay', 'amazon')),
    keyword     TEXT NOT NULL,
    cadence     TEXT NOT NULL CHECK (cadence IN ('daily', 'weekly')),
    last_period TEXT,                           -- the latest period a job was queued for
    created_at  TEXT NOT NULL,
    UNIQUE (user_id, source, keyword)
);
CREATE INDEX watchlist_due ON watchlist (last_period);
