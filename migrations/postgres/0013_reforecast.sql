-- The collectors' queue also carries re-forecast chunks (`kwi-train reforecast`): rows with source
-- 'reforecast', the run's name in `keyword`, the day they were queued in `period` and the chunk's
-- keywords in `payload` (JSON: {"index": i, "of": n, "keys": [[platform, keyword], ...]}). The
-- idempotency key is `reforecast:<run>:<index>`; a chunk is finished in the same transaction as
-- its predictions, so each keyword's prediction of a run is written once.

ALTER TABLE collect_jobs DROP CONSTRAINT collect_jobs_source_check;
ALTER TABLE collect_jobs ADD CONSTRAINT collect_jobs_source_check
    CHECK (source IN ('etsy', 'ebay', 'amazon', 'reforecast'));
ALTER TABLE collect_jobs ADD COLUMN payload TEXT;
ALTER TABLE collect_jobs ADD CONSTRAINT collect_jobs_payload
    CHECK ((source = 'reforecast') = (payload IS NOT NULL));
