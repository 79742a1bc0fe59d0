-- Each keyword's search volumes on its snapshot row, as comma-separated lists (SQLite has no
-- arrays): `volume_periods` (ISO dates) and `volume_values` (17 significant digits, so every double
-- reads back exactly), in (period_start, source) order, observations without a volume left out.
-- The import refreshes them with the rest of the snapshot in the same transaction (`REFRESH` in
-- src/store/sqlite.rs). The forecast path reads one row per keyword instead of one per observation.
ALTER TABLE keyword_data ADD COLUMN volume_periods TEXT NOT NULL DEFAULT '';
ALTER TABLE keyword_data ADD COLUMN volume_values TEXT NOT NULL DEFAULT '';

UPDATE keyword_data SET
    volume_periods = COALESCE((SELECT group_concat(o.period_start, ',' ORDER BY o.period_start, o.source)
        FROM keyword_observations o WHERE o.platform = keyword_data.platform
        AND o.keyword = keyword_data.keyword AND o.search_volume IS NOT NULL), ''),
    volume_values = COALESCE((SELECT group_concat(printf('%!.17g', o.search_volume), ',' ORDER BY o.period_start, o.source)
        FROM keyword_observations o WHERE o.platform = keyword_data.platform
        AND o.keyword = keyword_data.keyword AND o.search_volume IS NOT NULL), '');
