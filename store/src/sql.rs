//! SQL shared by both backends (SQLite accepts `$1` placeholders, `ON CONFLICT ... DO UPDATE ... WHERE`,
//! `IS DISTINCT FROM` and `RETURNING`), and the macro that implements [`super::Store`] for a pool type.

/// Column list of `keyword_observations` in bind order.
pub const OBS_INSERT_HEAD: &str = "INSERT INTO keyword_observations (id, platform, keyword, period_start, \
    search_volume, listing_count, price_median, price_p25, price_p75, review_count_median, rating_mean, \
    top10_review_share, sponsored_share, cpc, source, collected_at) ";

/// Upsert tail: only rows whose values differ are updated (and returned), so a re-import changes nothing.
pub const OBS_UPSERT_TAIL: &str = " ON CONFLICT (platform, keyword, period_start, source) DO UPDATE SET \
    search_volume = excluded.search_volume, listing_count = excluded.listing_count, \
    price_median = excluded.price_median, price_p25 = excluded.price_p25, price_p75 = excluded.price_p75, \
    review_count_median = excluded.review_count_median, rating_mean = excluded.rating_mean, \
    top10_review_share = excluded.top10_review_share, sponsored_share = excluded.sponsored_share, \
    cpc = excluded.cpc, collected_at = excluded.collected_at \
    WHERE keyword_observations.search_volume IS DISTINCT FROM excluded.search_volume \
    OR keyword_observations.listing_count IS DISTINCT FROM excluded.listing_count \
    OR keyword_observations.price_median IS DISTINCT FROM excluded.price_median \
    OR keyword_observations.price_p25 IS DISTINCT FROM excluded.price_p25 \
    OR keyword_observations.price_p75 IS DISTINCT FROM excluded.price_p75 \
    OR keyword_observations.review_count_median IS DISTINCT FROM excluded.review_count_median \
    OR keyword_observations.rating_mean IS DISTINCT FROM excluded.rating_mean \
    OR keyword_observations.top10_review_share IS DISTINCT FROM excluded.top10_review_share \
    OR keyword_observations.sponsored_share IS DISTINCT FROM excluded.sponsored_share \
    OR keyword_observations.cpc IS DISTINCT FROM excluded.cpc \
    RETURNING id";

/// History of one keyword, oldest first.
pub const HISTORY: &str = "SELECT period_start, search_volume, listing_count, price_median, cpc, source \
    FROM keyword_observations WHERE platform = $1 AND keyword = $2 ORDER BY period_start, source";

/// Snapshot of one keyword.
pub const SNAPSHOT: &str = "SELECT search_volume, competition, cpc, trend_data, last_updated \
    FROM keyword_data WHERE platform = $1 AND keyword = $2";

/// Observations with a search volume for training.
pub const OBSERVATIONS: &str = "SELECT platform, keyword, period_start, search_volume, source \
    FROM keyword_observations WHERE search_volume IS NOT NULL AND ($1 IS NULL OR platform = $1) \
    ORDER BY platform, keyword, period_start, source LIMIT $2";

/// Registry insert.
pub const MODEL_INSERT: &str = "INSERT INTO models (id, name, version, kind, feature_schema_hash, metrics, \
    artifact, created_at, active) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Clears the active flag of a kind's models (binds: false, kind, true).
pub const MODEL_DEACTIVATE_KIND: &str =
    "UPDATE models SET active = $1 WHERE kind = $2 AND active = $3";

/// Registry listing.
pub const MODELS: &str = "SELECT name, version, kind, feature_schema_hash, metrics, artifact, created_at, active \
    FROM models ORDER BY created_at DESC, version DESC";

/// Snapshots of one keyword on every platform.
pub const MARKETS: &str = "SELECT platform, search_volume, competition, cpc, trend_data, last_updated \
    FROM keyword_data WHERE keyword = $1 ORDER BY platform";

/// Competition score insert (rows of [`super::CompetitionRow`]).
pub const COMPETITION_INSERT_HEAD: &str = "INSERT INTO competition_scores (platform, keyword, score, band, \
    contributions, model_version, synthetic, computed_at) ";

/// Insight insert (rows of [`super::InsightRow`]).
pub const INSIGHT_INSERT_HEAD: &str = "INSERT INTO keyword_insights (platform, keyword, direction, growth_pct, \
    current, forecast_end, horizon, peak, anomaly, opportunity, opportunity_explanation, model_version, computed_at) ";

/// Stored competition score of one keyword.
pub const COMPETITION_ONE: &str = "SELECT score, band, contributions, model_version, synthetic \
    FROM competition_scores WHERE platform = $1 AND keyword = $2";

/// Stored insights of one keyword.
pub const INSIGHT_ONE: &str = "SELECT direction, growth_pct, current, forecast_end, horizon, peak, anomaly, \
    opportunity, opportunity_explanation, model_version FROM keyword_insights WHERE platform = $1 AND keyword = $2";

/// Rows per multi-row insert of scores and insights (13 binds each: below both backends' limits).
pub const INSIGHT_BATCH: usize = 500;

/// Escapes `%`, `_` and `\` for a LIKE pattern (used with `ESCAPE '\'`).
pub fn like_prefix(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 1);
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Implements [`super::Store`] for `$store` (a struct with a `pool: $pool` field) on database `$db`.
/// `$refresh` is the backend's snapshot-refresh statement (JSON aggregation differs between backends);
/// `$volumes_many` and `$insert_predictions` are per-backend functions (PostgreSQL binds arrays).
macro_rules! sql_store {
    ($store:ty, $db:ty, $backend:expr, $migrator:expr, $refresh:expr, $search:expr,
     $export_obs:expr, $export_pred:expr, $versions_many:expr, $volumes_many:expr,
     $insert_predictions:expr, $trends:expr) => {
        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> $crate::Backend {
                $backend
            }

            async fn migrate(&self) -> $crate::Result<()> {
                $migrator.run(&self.pool).await?;
                Ok(())
            }

            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn import(
                &self,
                rows: &[kwi_features::ingest::Observation],
                progress: &(dyn Fn(u64) + Send + Sync),
            ) -> $crate::Result<$crate::ImportCounts> {
                use $crate::sql::{OBS_INSERT_HEAD, OBS_UPSERT_TAIL};
                let mut counts = $crate::ImportCounts::default();
                let mut changed: std::collections::BTreeSet<(kwi_features::Platform, &str)> =
                    std::collections::BTreeSet::new();
                let now = chrono::Utc::now();
                let mut tx = self.pool.begin().await?;
                let mut done = 0u64;
                for batch in rows.chunks($crate::IMPORT_BATCH) {
                    let ids: Vec<uuid::Uuid> = batch.iter().map(|_| uuid::Uuid::now_v7()).collect();
                    let mut qb = sqlx::QueryBuilder::<$db>::new(OBS_INSERT_HEAD);
                    qb.push_values(batch.iter().zip(&ids), |mut b, (o, id)| {
                        let v = &o.values;
                        b.push_bind(*id)
                            .push_bind(o.platform.as_str())
                            .push_bind(o.keyword.as_str())
                            .push_bind(o.period_start)
                            .push_bind(v[0])
                            .push_bind(v[1].map(|c| c as i64))
                            .push_bind(v[2])
                            .push_bind(v[3])
                            .push_bind(v[4])
                            .push_bind(v[5])
                            .push_bind(v[6])
                            .push_bind(v[7])
                            .push_bind(v[8])
                            .push_bind(v[9])
                            .push_bind(o.source.as_str())
                            .push_bind(now);
                    });
                    qb.push(OBS_UPSERT_TAIL);
                    let returned: Vec<uuid::Uuid> =
                        qb.build_query_scalar().fetch_all(&mut *tx).await?;
                    let ours: std::collections::HashMap<uuid::Uuid, usize> =
                        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
                    let mut inserted_here = 0u64;
                    for id in &returned {
                        if let Some(i) = ours.get(id) {
                            inserted_here += 1;
                            changed.insert((batch[*i].platform, batch[*i].keyword.as_str()));
                        }
                    }
                    let updated_here = returned.len() as u64 - inserted_here;
                    if updated_here > 0 {
                        // An update returns the stored row's id, not ours: find which keywords those were.
                        for o in batch {
                            changed.insert((o.platform, o.keyword.as_str()));
                        }
                    }
                    counts.inserted += inserted_here;
                    counts.updated += updated_here;
                    counts.unchanged += batch.len() as u64 - returned.len() as u64;
                    done += batch.len() as u64;
                    progress(done);
                }
                for (platform, keyword) in &changed {
                    sqlx::query($refresh)
                        .bind(uuid::Uuid::now_v7())
                        .bind(platform.as_str())
                        .bind(*keyword)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(counts)
            }

            async fn observation_count(&self) -> $crate::Result<i64> {
                Ok(
                    sqlx::query_scalar("SELECT COUNT(*) FROM keyword_observations")
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn keyword_count(&self) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM keyword_data")
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn history(
                &self,
                platform: kwi_features::Platform,
                keyword: &kwi_features::Keyword,
            ) -> $crate::Result<Vec<$crate::HistoryPoint>> {
                use sqlx::Row;
                let rows = sqlx::query($crate::sql::HISTORY)
                    .bind(platform.as_str())
                    .bind(keyword.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::HistoryPoint {
                            period_start: r.try_get(0)?,
                            search_volume: r.try_get(1)?,
                            listing_count: r.try_get(2)?,
                            price_median: r.try_get(3)?,
                            cpc: r.try_get(4)?,
                            source: r.try_get(5)?,
                        })
                    })
                    .collect()
            }

            async fn data_version(
                &self,
                platform: kwi_features::Platform,
                keyword: &kwi_features::Keyword,
            ) -> $crate::Result<Option<chrono::DateTime<chrono::Utc>>> {
                Ok(sqlx::query_scalar(
                    "SELECT last_updated FROM keyword_data WHERE platform = $1 AND keyword = $2",
                )
                .bind(platform.as_str())
                .bind(keyword.as_str())
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn latest_data_change(
                &self,
            ) -> $crate::Result<Option<chrono::DateTime<chrono::Utc>>> {
                Ok(
                    sqlx::query_scalar("SELECT MAX(last_updated) FROM keyword_data")
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn snapshot(
                &self,
                platform: kwi_features::Platform,
                keyword: &kwi_features::Keyword,
            ) -> $crate::Result<Option<$crate::Snapshot>> {
                use sqlx::Row;
                let row = sqlx::query($crate::sql::SNAPSHOT)
                    .bind(platform.as_str())
                    .bind(keyword.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| {
                    let trend: sqlx::types::Json<serde_json::Value> = r.try_get(3)?;
                    Ok($crate::Snapshot {
                        search_volume: r.try_get(0)?,
                        competition: r.try_get(1)?,
                        cpc: r.try_get(2)?,
                        trend_data: trend.0,
                        last_updated: r.try_get(4)?,
                    })
                })
                .transpose()
            }

            async fn observations(
                &self,
                platform: Option<kwi_features::Platform>,
                max_rows: Option<i64>,
            ) -> $crate::Result<Vec<kwi_features::ingest::Observation>> {
                use sqlx::Row;
                let rows = sqlx::query($crate::sql::OBSERVATIONS)
                    .bind(platform.map(|p| p.as_str()))
                    .bind(max_rows.unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let p: String = r.try_get(0)?;
                        let k: String = r.try_get(1)?;
                        let corrupt = |e: String| $crate::StoreError::Corrupt(e);
                        let mut values = [None; 10];
                        values[0] = r.try_get(3)?;
                        Ok(kwi_features::ingest::Observation {
                            platform: p.parse().map_err(
                                |e: kwi_features::keyword::PlatformError| corrupt(e.to_string()),
                            )?,
                            keyword: kwi_features::Keyword::parse(&k)
                                .map_err(|e| corrupt(e.to_string()))?,
                            period_start: r.try_get(2)?,
                            values,
                            source: r.try_get(4)?,
                            line: i + 1,
                        })
                    })
                    .collect()
            }

            async fn register_model(
                &self,
                record: &$crate::ModelRecord,
                activate: bool,
            ) -> $crate::Result<()> {
                let mut tx = self.pool.begin().await?;
                if activate {
                    sqlx::query($crate::sql::MODEL_DEACTIVATE_KIND)
                        .bind(false)
                        .bind(record.kind.as_str())
                        .bind(true)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query($crate::sql::MODEL_INSERT)
                    .bind(uuid::Uuid::now_v7())
                    .bind(record.name.as_str())
                    .bind(record.version.as_str())
                    .bind(record.kind.as_str())
                    .bind(record.feature_schema_hash.as_str())
                    .bind(sqlx::types::Json(&record.metrics))
                    .bind(record.artifact.as_str())
                    .bind(record.created_at)
                    .bind(activate)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn activate_model(&self, version: &str) -> $crate::Result<bool> {
                let mut tx = self.pool.begin().await?;
                let kind: Option<String> =
                    sqlx::query_scalar("SELECT kind FROM models WHERE version = $1")
                        .bind(version)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(kind) = kind else {
                    return Ok(false);
                };
                sqlx::query($crate::sql::MODEL_DEACTIVATE_KIND)
                    .bind(false)
                    .bind(kind.as_str())
                    .bind(true)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE models SET active = $1 WHERE version = $2")
                    .bind(true)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn models(&self) -> $crate::Result<Vec<$crate::ModelRecord>> {
                use sqlx::Row;
                let rows = sqlx::query($crate::sql::MODELS)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let metrics: sqlx::types::Json<serde_json::Value> = r.try_get(4)?;
                        Ok($crate::ModelRecord {
                            name: r.try_get(0)?,
                            version: r.try_get(1)?,
                            kind: r
                                .try_get::<String, _>(2)?
                                .parse()
                                .map_err($crate::StoreError::Corrupt)?,
                            feature_schema_hash: r.try_get(3)?,
                            metrics: metrics.0,
                            artifact: r.try_get(5)?,
                            created_at: r.try_get(6)?,
                            active: r.try_get(7)?,
                        })
                    })
                    .collect()
            }

            async fn insert_predictions(
                &self,
                rows: &[$crate::PredictionRecord],
            ) -> $crate::Result<()> {
                if rows.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                $insert_predictions(&mut *tx, rows, chrono::Utc::now()).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn search(
                &self,
                q: &str,
                platform: Option<kwi_features::Platform>,
                limit: i64,
            ) -> $crate::Result<Vec<$crate::SearchHit>> {
                use sqlx::Row;
                let rows = sqlx::query($search)
                    .bind(q)
                    .bind($crate::sql::like_prefix(q))
                    .bind(platform.map(|p| p.as_str()))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::SearchHit {
                            platform: r.try_get(0)?,
                            keyword: r.try_get(1)?,
                            search_volume: r.try_get(2)?,
                            prefix: r.try_get(3)?,
                        })
                    })
                    .collect()
            }

            async fn markets(
                &self,
                keyword: &kwi_features::Keyword,
            ) -> $crate::Result<Vec<(String, $crate::Snapshot)>> {
                use sqlx::Row;
                let rows = sqlx::query($crate::sql::MARKETS)
                    .bind(keyword.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let trend: sqlx::types::Json<serde_json::Value> = r.try_get(4)?;
                        Ok((
                            r.try_get(0)?,
                            $crate::Snapshot {
                                search_volume: r.try_get(1)?,
                                competition: r.try_get(2)?,
                                cpc: r.try_get(3)?,
                                trend_data: trend.0,
                                last_updated: r.try_get(5)?,
                            },
                        ))
                    })
                    .collect()
            }

            async fn data_versions_many(
                &self,
                keys: &[(kwi_features::Platform, kwi_features::Keyword)],
            ) -> $crate::Result<
                Vec<(
                    (kwi_features::Platform, kwi_features::Keyword),
                    chrono::DateTime<chrono::Utc>,
                )>,
            > {
                use sqlx::Row;
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                let rows = sqlx::query($versions_many)
                    .bind($crate::keys_json(keys))
                    .fetch_all(&self.pool)
                    .await?;
                let index: std::collections::HashMap<(&str, &str), usize> = keys
                    .iter()
                    .enumerate()
                    .map(|(i, (p, k))| ((p.as_str(), k.as_str()), i))
                    .collect();
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let p: String = r.try_get(0)?;
                    let k: String = r.try_get(1)?;
                    if let Some(&i) = index.get(&(p.as_str(), k.as_str())) {
                        out.push((keys[i].clone(), r.try_get(2)?));
                    }
                }
                Ok(out)
            }

            async fn volumes_many(
                &self,
                keys: &[(kwi_features::Platform, kwi_features::Keyword)],
            ) -> $crate::Result<Vec<Vec<(chrono::NaiveDate, f64)>>> {
                let mut out = vec![Vec::new(); keys.len()];
                if keys.is_empty() {
                    return Ok(out);
                }
                let json = $crate::keys_json(keys);
                $volumes_many(&self.pool, json.as_str(), &mut out).await?;
                Ok(out)
            }

            fn export_observations<'a>(
                &'a self,
                filter: &'a $crate::ExportFilter,
            ) -> futures::stream::BoxStream<
                'a,
                $crate::Result<$crate::ExportObservation>,
            > {
                use futures::StreamExt;
                sqlx::query_as::<_, $crate::ExportObservation>($export_obs)
                    .bind(filter.platform.map(|p| p.as_str()))
                    .bind(filter.keywords_json())
                    .bind(filter.from)
                    .bind(filter.to)
                    .fetch(&self.pool)
                    .map(|r| r.map_err(Into::into))
                    .boxed()
            }

            fn export_predictions<'a>(
                &'a self,
                filter: &'a $crate::ExportFilter,
            ) -> futures::stream::BoxStream<
                'a,
                $crate::Result<$crate::ExportPrediction>,
            > {
                use futures::StreamExt;
                sqlx::query_as::<_, $crate::ExportPrediction>($export_pred)
                    .bind(filter.platform.map(|p| p.as_str()))
                    .bind(filter.keywords_json())
                    .bind(filter.from)
                    .bind(filter.to)
                    .fetch(&self.pool)
                    .map(|r| r.map_err(Into::into))
                    .boxed()
            }

            async fn prediction_count(
                &self,
                platform: kwi_features::Platform,
                keyword: &kwi_features::Keyword,
            ) -> $crate::Result<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM predictions WHERE platform = $1 AND keyword = $2",
                )
                .bind(platform.as_str())
                .bind(keyword.as_str())
                .fetch_one(&self.pool)
                .await?)
            }
            async fn replace_insights(
                &self,
                scores: &[$crate::CompetitionRow],
                insights: &[$crate::InsightRow],
            ) -> $crate::Result<()> {
                use $crate::sql::{COMPETITION_INSERT_HEAD, INSIGHT_BATCH, INSIGHT_INSERT_HEAD};
                let now = chrono::Utc::now();
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM competition_scores").execute(&mut *tx).await?;
                sqlx::query("DELETE FROM keyword_insights").execute(&mut *tx).await?;
                sqlx::query("UPDATE keyword_data SET competition = NULL WHERE competition IS NOT NULL")
                    .execute(&mut *tx)
                    .await?;
                for batch in scores.chunks(INSIGHT_BATCH) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(COMPETITION_INSERT_HEAD);
                    qb.push_values(batch, |mut b, r| {
                        b.push_bind(r.platform.as_str())
                            .push_bind(r.keyword.as_str())
                            .push_bind(r.score)
                            .push_bind(r.band.as_str())
                            .push_bind(sqlx::types::Json(&r.contributions))
                            .push_bind(r.model_version.as_str())
                            .push_bind(r.synthetic)
                            .push_bind(now);
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                for r in scores {
                    sqlx::query("UPDATE keyword_data SET competition = $1 WHERE platform = $2 AND keyword = $3")
                        .bind(r.score)
                        .bind(r.platform.as_str())
                        .bind(r.keyword.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                for batch in insights.chunks(INSIGHT_BATCH) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(INSIGHT_INSERT_HEAD);
                    qb.push_values(batch, |mut b, r| {
                        b.push_bind(r.platform.as_str())
                            .push_bind(r.keyword.as_str())
                            .push_bind(r.direction.as_str())
                            .push_bind(r.growth_pct)
                            .push_bind(r.current)
                            .push_bind(r.forecast_end)
                            .push_bind(r.horizon)
                            .push_bind(r.peak.as_ref().map(sqlx::types::Json))
                            .push_bind(r.anomaly.as_ref().map(sqlx::types::Json))
                            .push_bind(r.opportunity)
                            .push_bind(r.opportunity_explanation.as_deref())
                            .push_bind(r.model_version.as_str())
                            .push_bind(now);
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn trends(
                &self,
                platform: Option<kwi_features::Platform>,
                direction: &str,
                limit: i64,
            ) -> $crate::Result<Vec<$crate::TrendItem>> {
                Ok(sqlx::query_as::<_, $crate::TrendItem>($trends)
                    .bind(direction)
                    .bind(platform.map(|p| p.as_str()))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn keyword_insight(
                &self,
                platform: kwi_features::Platform,
                keyword: &kwi_features::Keyword,
            ) -> $crate::Result<(
                Option<$crate::CompetitionRow>,
                Option<$crate::InsightRow>,
            )> {
                use sqlx::Row;
                let comp = sqlx::query($crate::sql::COMPETITION_ONE)
                    .bind(platform.as_str())
                    .bind(keyword.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| {
                        let c: sqlx::types::Json<serde_json::Value> = r.try_get(2)?;
                        Ok::<_, $crate::StoreError>($crate::CompetitionRow {
                            platform,
                            keyword: keyword.clone(),
                            score: r.try_get(0)?,
                            band: r.try_get(1)?,
                            contributions: c.0,
                            model_version: r.try_get(3)?,
                            synthetic: r.try_get(4)?,
                        })
                    })
                    .transpose()?;
                let ins = sqlx::query($crate::sql::INSIGHT_ONE)
                    .bind(platform.as_str())
                    .bind(keyword.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| {
                        let peak: Option<sqlx::types::Json<serde_json::Value>> = r.try_get(5)?;
                        let anomaly: Option<sqlx::types::Json<serde_json::Value>> = r.try_get(6)?;
                        Ok::<_, $crate::StoreError>($crate::InsightRow {
                            platform,
                            keyword: keyword.clone(),
                            direction: r.try_get(0)?,
                            growth_pct: r.try_get(1)?,
                            current: r.try_get(2)?,
                            forecast_end: r.try_get(3)?,
                            horizon: r.try_get(4)?,
                            peak: peak.map(|j| j.0),
                            anomaly: anomaly.map(|j| j.0),
                            opportunity: r.try_get(7)?,
                            opportunity_explanation: r.try_get(8)?,
                            model_version: r.try_get(9)?,
                        })
                    })
                    .transpose()?;
                Ok((comp, ins))
            }
        }
    };
}

pub(crate) use sql_store;
