-- Persisted forecasts as native float8 arrays instead of JSONB. Every computed forecast is stored
-- (thousands a second under load), and turning its JSON text into JSONB (each number into a
-- `numeric`) was most of PostgreSQL's cost per stored row: 5,000 rows of up to 104 steps took
-- ~300 ms from JSON text and ~80 ms from binary float8 arrays here. The export endpoint rebuilds the
-- same JSON from the arrays, so what clients see does not change.
--
-- Layout: `mean` has `horizon` values; `levels` the interval levels (percent, in the order served);
-- `lo`/`hi` the bounds level-major: lo[(j - 1) * horizon + k] is level j's bound at step k.
-- Stored rows are converted in this migration's transaction; nothing is lost.
ALTER TABLE predictions
    ADD COLUMN mean_values DOUBLE PRECISION[],
    ADD COLUMN levels      DOUBLE PRECISION[],
    ADD COLUMN lo          DOUBLE PRECISION[],
    ADD COLUMN hi          DOUBLE PRECISION[];

UPDATE predictions p SET
    mean_values = ARRAY(
        SELECT e::float8 FROM jsonb_array_elements_text(p.mean) WITH ORDINALITY AS a (e, i) ORDER BY i),
    levels = ARRAY(
        SELECT k::float8 FROM jsonb_object_keys(p.quantiles) AS k ORDER BY k::float8),
    lo = ARRAY(
        SELECT e::float8 FROM jsonb_each(p.quantiles) AS q (k, v),
            jsonb_array_elements_text(q.v -> 'lo') WITH ORDINALITY AS a (e, i)
        ORDER BY q.k::float8, a.i),
    hi = ARRAY(
        SELECT e::float8 FROM jsonb_each(p.quantiles) AS q (k, v),
            jsonb_array_elements_text(q.v -> 'hi') WITH ORDINALITY AS a (e, i)
        ORDER BY q.k::float8, a.i);

ALTER TABLE predictions DROP COLUMN mean, DROP COLUMN quantiles;
ALTER TABLE predictions RENAME COLUMN mean_values TO mean;
ALTER TABLE predictions
    ALTER COLUMN mean SET NOT NULL,
    ALTER COLUMN levels SET NOT NULL,
    ALTER COLUMN lo SET NOT NULL,
    ALTER COLUMN hi SET NOT NULL,
    ADD CONSTRAINT predictions_shape CHECK (
        cardinality(mean) = horizon
        AND cardinality(lo) = cardinality(levels) * horizon
        AND cardinality(hi) = cardinality(lo));

-- As 0006 did for the JSON columns: lz4 where the server has it, pglz otherwise.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE predictions ALTER COLUMN mean SET COMPRESSION lz4, '
            'ALTER COLUMN lo SET COMPRESSION lz4, ALTER COLUMN hi SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 TOAST compression unavailable (%); predictions keep pglz', SQLERRM;
END
$$;
