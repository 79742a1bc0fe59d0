-- SQLite has no trigram index: search uses the prefix index (keyword_data_prefix) and a substring
-- scan of keyword_data. This migration keeps the two backends' version numbers aligned.
CREATE INDEX IF NOT EXISTS keyword_data_platform ON keyword_data (platform, keyword);
