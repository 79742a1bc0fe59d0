-- Signals of the export files sellers have (kwi_features::sellers): Keyword Planner's competition
-- index (0-100), Brand Analytics' weekly search frequency rank (1 = most searched; a demand signal
-- of its own, never a volume) and the top clicked products' summed click and conversion shares.
ALTER TABLE keyword_observations
    ADD COLUMN competition_index     DOUBLE PRECISION CHECK (competition_index BETWEEN 0 AND 100),
    ADD COLUMN search_frequency_rank BIGINT CHECK (search_frequency_rank >= 1),
    ADD COLUMN click_share           DOUBLE PRECISION CHECK (click_share BETWEEN 0 AND 1),
    ADD COLUMN conversion_share      DOUBLE PRECISION CHECK (conversion_share BETWEEN 0 AND 1);
