-- Mirror of migrations/postgres/0010_seller_signals.sql.
ALTER TABLE keyword_observations ADD COLUMN competition_index REAL CHECK (competition_index BETWEEN 0 AND 100);
ALTER TABLE keyword_observations ADD COLUMN search_frequency_rank INTEGER CHECK (search_frequency_rank >= 1);
ALTER TABLE keyword_observations ADD COLUMN click_share REAL CHECK (click_share BETWEEN 0 AND 1);
ALTER TABLE keyword_observations ADD COLUMN conversion_share REAL CHECK (conversion_share BETWEEN 0 AND 1);
