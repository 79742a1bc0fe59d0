-- Mirror of migrations/postgres/0014_leader_leases.sql.
CREATE TABLE leader_leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  TEXT NOT NULL
);
