-- Fuzzy keyword search (trigram similarity) for GET /v1/keywords/search.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX keyword_data_trgm ON keyword_data USING gin (keyword gin_trgm_ops);
