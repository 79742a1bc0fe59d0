-- Each keyword's search volumes as arrays on its snapshot row: `volume_periods` and `volume_values`,
-- in (period_start, source) order, observations without a volume left out. The import refreshes
-- them with the rest of the snapshot, in the same transaction (`REFRESH` in src/store/postgres.rs),
-- so they always equal what aggregating `keyword_observations` would give. The forecast path reads
-- one row per keyword instead of aggregating ~100 observations per request (64 keywords of 104
-- weeks: 5.62 ms -> 0.62 ms of PostgreSQL execution; benches/sql/run.sh).
ALTER TABLE keyword_data
    ADD COLUMN volume_periods DATE[] NOT NULL DEFAULT '{}',
    ADD COLUMN volume_values DOUBLE PRECISION[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT keyword_data_volumes_shape
        CHECK (cardinality(volume_periods) = cardinality(volume_values));

UPDATE keyword_data d SET volume_periods = v.periods, volume_values = v.vals
FROM (SELECT platform, keyword,
             array_agg(period_start ORDER BY period_start, source) AS periods,
             array_agg(search_volume ORDER BY period_start, source) AS vals
      FROM keyword_observations WHERE search_volume IS NOT NULL
      GROUP BY platform, keyword) v
WHERE d.platform = v.platform AND d.keyword = v.keyword;
