-- Background work that runs once across instances (store/src/lease.rs): one row per named lease,
-- held by one instance until `until`.
CREATE TABLE leader_leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  TIMESTAMPTZ NOT NULL
);
