-- The server polls MAX(last_updated) every second to notice new data (see src/serving.rs DataVersions).
CREATE INDEX keyword_data_last_updated ON keyword_data (last_updated);
