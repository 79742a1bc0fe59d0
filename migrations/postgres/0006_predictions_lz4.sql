-- Persisted forecasts (a few KB of JSON each, one row per computed forecast) were TOAST-compressed
-- with pglz: 13 % of PostgreSQL's CPU on the uncached forecast path (benches/load phase 4, perf).
-- lz4 (PostgreSQL >= 14 built with it, as Debian's and the official images are) compresses them for a
-- fraction of that. Only new rows use it; stored rows stay as they are and read the same. Where lz4
-- is unavailable the columns keep pglz and the migration still succeeds.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE predictions ALTER COLUMN mean SET COMPRESSION lz4, '
            'ALTER COLUMN quantiles SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 TOAST compression unavailable (%); predictions keep pglz', SQLERRM;
END
$$;
