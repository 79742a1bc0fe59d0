//! Store behaviour on both backends: migrations from empty, upsert idempotence, atomicity.

use chrono::NaiveDate;
use kwi_features::ingest::{IngestOptions, Observation, read_observations};
use kwi_features::{Keyword, Platform};
use kwi_store::Store;

use crate::helpers::{TestApp, TestDb, backend_tests, data_file};

fn obs(keyword: &str, day: u32, volume: f64) -> Observation {
    let mut values = [None; kwi_features::ingest::VALUE_COUNT];
    values[0] = Some(volume);
    Observation {
        platform: Platform::Etsy,
        keyword: Keyword::parse(keyword).unwrap(),
        period_start: NaiveDate::from_ymd_opt(2024, 1, day).unwrap(),
        values,
        source: "test".into(),
        line: day as usize,
    }
}

fn kw(k: &str) -> Keyword {
    Keyword::parse(k).unwrap()
}

/// `migrator` without migration `version` and those after it: a database as it was before them.
fn migrations_before(
    mut migrator: sqlx::migrate::Migrator,
    version: i64,
) -> sqlx::migrate::Migrator {
    let upto = migrator
        .migrations
        .iter()
        .position(|m| m.version == version)
        .unwrap_or_else(|| panic!("migration {version} exists"));
    migrator.migrations = migrator.migrations[..upto].to_vec().into();
    migrator
}

async fn migrations_from_empty_are_idempotent_and_seed_platforms(app: TestApp) {
    let (name, store) = (app.name, &app.store);
    // Already migrated once by the fixture; a second run is a no-op.
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    store.ping().await.unwrap();
    assert_eq!(store.observation_count().await.unwrap(), 0, "{name}");
    assert_eq!(store.keyword_count().await.unwrap(), 0, "{name}");
    assert_eq!(store.backend(), app.backend);
}
backend_tests!(migrations_from_empty_are_idempotent_and_seed_platforms);

/// The store's sessions run without JIT (its compile time dwarfed short statements), unless the
/// URL sets `jit` itself.
#[tokio::test]
async fn postgres_sessions_run_without_jit_unless_the_url_says() {
    let app = TestApp::postgres().await;
    let show = |store: kwi_store::PgStore| async move {
        let v: String = sqlx::query_scalar("SHOW jit")
            .fetch_one(store.pool())
            .await
            .unwrap();
        store.pool().close().await;
        v
    };
    let plain = kwi_store::PgStore::connect(&app.db_url).await.unwrap();
    assert_eq!(show(plain).await, "off");
    let url = format!("{}?options=-c%20jit%3Don", app.db_url);
    let explicit = kwi_store::PgStore::connect(&url).await.unwrap();
    assert_eq!(show(explicit).await, "on");
    app.cleanup().await;
}

/// Migration 0007 turns the JSONB forecasts stored before it into float arrays: every stored value
/// survives, in step and level order (levels sorted numerically, not as text: "95" < "97.5" < "99"
/// either way, but "5" would sort after "40" as text), and the export rebuilds the same JSON.
#[tokio::test]
async fn postgres_predictions_stored_as_json_survive_the_move_to_arrays() {
    let db = TestDb::postgres().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    migrations_before(sqlx::migrate!("migrations/postgres"), 7)
        .run(&pool)
        .await
        .unwrap();
    let q = r#"{"40": {"lo": [1.5, 2.5], "hi": [3.5, 4.5]}, "5": {"lo": [2, 3], "hi": [3, 4]}, "97.5": {"lo": [0, 0.25], "hi": [9, 10]}}"#;
    sqlx::query(
        "INSERT INTO predictions (id, platform, keyword, model_version, data_as_of, horizon, mean, quantiles) \
         VALUES ($1, 'etsy', 'mug', 'm1', '2024-01-07', 2, '[2.75, 3.125]', $2::jsonb), \
                ($3, 'etsy', 'cup', 'm1', '2024-01-07', 1, '[7]', '{}')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(q)
    .bind(uuid::Uuid::now_v7())
    .execute(&pool)
    .await
    .unwrap();
    sqlx::migrate!("migrations/postgres")
        .run(&pool)
        .await
        .unwrap();
    type Arrays = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);
    let mug: Arrays =
        sqlx::query_as("SELECT mean, levels, lo, hi FROM predictions WHERE keyword = 'mug'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        mug,
        (
            vec![2.75, 3.125],
            vec![5.0, 40.0, 97.5],
            vec![2.0, 3.0, 1.5, 2.5, 0.0, 0.25],
            vec![3.0, 4.0, 3.5, 4.5, 9.0, 10.0]
        )
    );
    let cup: Arrays =
        sqlx::query_as("SELECT mean, levels, lo, hi FROM predictions WHERE keyword = 'cup'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(cup, (vec![7.0], vec![], vec![], vec![]));
    // The export rebuilds the JSON the rows were stored with.
    let store = kwi_store::PgStore::connect(&db.url).await.unwrap();
    use futures::StreamExt;
    let rows: Vec<_> = kwi_store::Store::export_predictions(&store, &Default::default())
        .collect()
        .await;
    let mug = rows
        .into_iter()
        .map(|r| r.unwrap())
        .find(|r| r.keyword == "mug")
        .unwrap();
    assert_eq!(mug.mean.0, vec![2.75, 3.125]);
    assert_eq!(
        mug.quantiles.0,
        serde_json::from_str::<serde_json::Value>(q).unwrap()
    );
    pool.close().await;
    db.cleanup().await;
}

/// Since migration 0007 a stored forecast has one `lo` and one `hi` per step and level.
#[tokio::test]
async fn postgres_predictions_must_have_one_bound_per_step_and_level() {
    let app = TestApp::postgres().await;
    let pool = sqlx::PgPool::connect(&app.db_url).await.unwrap();
    let bad = sqlx::query(
        "INSERT INTO predictions (id, platform, keyword, model_version, data_as_of, horizon, mean, levels, lo, hi) \
         VALUES ($1, 'etsy', 'mug', 'm1', '2024-01-07', 2, '{1, 2}', '{80}', '{1}', '{2, 3}')",
    )
    .bind(uuid::Uuid::now_v7())
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(bad.to_string().contains("predictions_shape"), "{bad}");
    pool.close().await;
    app.cleanup().await;
}

/// The Google Trends reference file, parsed (no errors, 32 topics × 679 weeks).
fn gtrends_rows() -> Vec<Observation> {
    let got = read_observations(
        &data_file("samples/gtrends_pt_weekly_topics.csv"),
        &IngestOptions::default(),
    )
    .unwrap();
    assert!(
        got.errors.is_empty(),
        "{:?}",
        &got.errors[..got.errors.len().min(3)]
    );
    assert_eq!(got.rows.len(), 32 * 679);
    got.rows
}

/// Imports [`gtrends_rows`], checking that every row is new.
async fn import_gtrends(app: &TestApp) -> Vec<Observation> {
    let rows = gtrends_rows();
    let first = app.store.import(&rows, &|_| {}).await.unwrap();
    assert_eq!(
        (first.inserted, first.updated, first.unchanged),
        (21_728, 0, 0),
        "{}",
        app.name
    );
    rows
}

async fn gtrends_import_then_reimport_changes_nothing(app: TestApp) {
    let (name, store) = (app.name, &app.store);
    let rows = import_gtrends(&app).await;
    let snap_before = store
        .snapshot(Platform::Google, &kw("coffee"))
        .await
        .unwrap()
        .expect("snapshot after import");
    let again = store.import(&rows, &|_| {}).await.unwrap();
    assert_eq!(
        (again.inserted, again.updated, again.unchanged),
        (0, 0, 21_728),
        "{name}"
    );
    assert_eq!(store.observation_count().await.unwrap(), 21_728, "{name}");
    assert_eq!(store.keyword_count().await.unwrap(), 32, "{name}");
    let snap_after = store
        .snapshot(Platform::Google, &kw("coffee"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        snap_before, snap_after,
        "{name}: a no-op re-import must not touch snapshots"
    );
}
backend_tests!(gtrends_import_then_reimport_changes_nothing);

/// Snapshot = last week of the file; trend = last 52 weeks, oldest first.
async fn the_snapshot_holds_the_last_week_and_a_52_week_trend(app: TestApp) {
    let (name, store) = (app.name, &app.store);
    import_gtrends(&app).await;
    let snap = store
        .snapshot(Platform::Google, &kw("coffee"))
        .await
        .unwrap()
        .unwrap();
    let hist = store
        .history(Platform::Google, &kw("coffee"))
        .await
        .unwrap();
    assert_eq!(hist.len(), 679, "{name}");
    assert_eq!(
        hist.last().unwrap().period_start,
        NaiveDate::from_ymd_opt(2018, 12, 30).unwrap()
    );
    assert_eq!(
        snap.search_volume,
        hist.last().unwrap().search_volume,
        "{name}"
    );
    let trend = snap.trend_data.as_array().unwrap();
    assert_eq!(trend.len(), 52, "{name}");
    assert_eq!(trend[51][0].as_str(), Some("2018-12-30"), "{name}");
    assert_eq!(trend[0][0].as_str(), Some("2018-01-07"), "{name}");
}
backend_tests!(the_snapshot_holds_the_last_week_and_a_52_week_trend);

/// What a forecast reads: the volumes alone, in the history's order; many at once in the order
/// asked, an unknown keyword empty, a repeated one answered twice.
async fn volumes_many_answers_in_the_order_asked(app: TestApp) {
    let (name, store) = (app.name, &app.store);
    import_gtrends(&app).await;
    let volumes_of = |h: &[kwi_store::HistoryPoint]| -> Vec<(NaiveDate, f64)> {
        h.iter()
            .filter_map(|h| h.search_volume.map(|v| (h.period_start, v)))
            .collect()
    };
    let coffee = volumes_of(
        &store
            .history(Platform::Google, &kw("coffee"))
            .await
            .unwrap(),
    );
    assert_eq!(coffee.len(), 679, "{name}");
    let jam = volumes_of(&store.history(Platform::Google, &kw("jam")).await.unwrap());
    let many = store
        .volumes_many(&[
            (Platform::Google, kw("jam")),
            (Platform::Google, kw("no such topic")),
            (Platform::Etsy, kw("coffee")),
            (Platform::Google, kw("coffee")),
            (Platform::Google, kw("jam")),
        ])
        .await
        .unwrap();
    assert_eq!(
        many,
        vec![jam.clone(), vec![], vec![], coffee, jam],
        "{name}"
    );
}
backend_tests!(volumes_many_answers_in_the_order_asked);

async fn changed_values_are_updated_and_counted(app: TestApp) {
    let (name, store) = (app.name, &app.store);
    let rows = vec![obs("tarot deck", 1, 10.0), obs("tarot deck", 8, 12.0)];
    let c = store.import(&rows, &|_| {}).await.unwrap();
    assert_eq!((c.inserted, c.updated, c.unchanged), (2, 0, 0), "{name}");
    let rows = vec![
        obs("tarot deck", 1, 10.0),
        obs("tarot deck", 8, 15.0),
        obs("tarot deck", 15, 9.0),
    ];
    let c = store.import(&rows, &|_| {}).await.unwrap();
    assert_eq!((c.inserted, c.updated, c.unchanged), (1, 1, 1), "{name}");
    let snap = store
        .snapshot(Platform::Etsy, &kw("tarot deck"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snap.search_volume, Some(9.0), "{name}");
    let hist = store
        .history(Platform::Etsy, &kw("tarot deck"))
        .await
        .unwrap();
    let vols: Vec<_> = hist.iter().map(|h| h.search_volume.unwrap()).collect();
    assert_eq!(vols, vec![10.0, 15.0, 9.0], "{name}");
    // The forecast path's copy of the volumes (kept on the snapshot row) follows the update.
    let key = (Platform::Etsy, kw("tarot deck"));
    let read = store
        .volumes_many(std::slice::from_ref(&key))
        .await
        .unwrap();
    let days: Vec<_> = hist.iter().map(|h| h.period_start).collect();
    assert_eq!(
        read,
        vec![days.into_iter().zip(vols).collect::<Vec<_>>()],
        "{name}"
    );
}
backend_tests!(changed_values_are_updated_and_counted);

/// The volumes the forecast path reads are the stored doubles bit for bit (SQLite keeps them as
/// text: 17 significant digits), in period order, a period with no volume left out.
async fn volumes_read_back_exactly(app: TestApp) {
    let tricky = [
        0.1 + 0.2,
        1.0 / 3.0,
        123_456_789.123_456_79,
        5e-324,
        f64::MAX,
        0.0,
        2f64.powi(53) + 2.0,
        1e-300,
        4.35,
    ];
    // Imported in reverse period order; day 10 has no search volume.
    let mut rows: Vec<Observation> = tricky
        .iter()
        .enumerate()
        .rev()
        .map(|(i, v)| obs("exact", 1 + i as u32, *v))
        .collect();
    let mut no_volume = obs("exact", 10, 0.0);
    no_volume.values[0] = None;
    no_volume.values[1] = Some(5.0);
    rows.push(no_volume);
    app.store.import(&rows, &|_| {}).await.unwrap();
    let read = app
        .store
        .volumes_many(&[(Platform::Etsy, kw("exact"))])
        .await
        .unwrap();
    let want: Vec<(NaiveDate, u64)> = tricky
        .iter()
        .enumerate()
        .map(|(i, v)| {
            (
                NaiveDate::from_ymd_opt(2024, 1, 1 + i as u32).unwrap(),
                v.to_bits(),
            )
        })
        .collect();
    let got: Vec<(NaiveDate, u64)> = read[0].iter().map(|(d, v)| (*d, v.to_bits())).collect();
    assert_eq!(got, want, "{}", app.name);
}
backend_tests!(volumes_read_back_exactly);

/// Migrations 0008 (PostgreSQL) and 0006 (SQLite) fill the forecast path's volume copy for
/// keywords stored before them: the same volumes, in period order, as the observations hold.
mod volumes_stored_before_the_snapshot_copy_are_filled_in {
    use chrono::NaiveDate;
    use kwi_features::Platform;
    use kwi_store::Store;

    use super::{kw, migrations_before};
    use crate::helpers::TestDb;

    const FILL: &str = "INSERT INTO keyword_observations (id, platform, keyword, period_start, search_volume, source) VALUES \
        ($1, 'etsy', 'mug', '2024-01-14', 2.5, 'a'), ($2, 'etsy', 'mug', '2024-01-07', 0.1, 'b'), \
        ($3, 'etsy', 'mug', '2024-01-07', 7, 'a'), ($4, 'etsy', 'mug', '2024-01-21', NULL, 'a'), \
        ($5, 'etsy', 'cup', '2024-01-07', NULL, 'a')";
    const SNAPSHOTS: &str = "INSERT INTO keyword_data (id, platform, keyword, search_volume, last_updated) VALUES \
        ($1, 'etsy', 'mug', 2.5, '2024-02-01T00:00:00Z'), ($2, 'etsy', 'cup', NULL, '2024-02-01T00:00:00Z')";

    /// Mug, cup (no volume), plate (never stored).
    fn keys() -> [(Platform, kwi_features::Keyword); 3] {
        [
            (Platform::Etsy, kw("mug")),
            (Platform::Etsy, kw("cup")),
            (Platform::Etsy, kw("plate")),
        ]
    }

    fn want() -> Vec<Vec<(NaiveDate, f64)>> {
        let d = |day| NaiveDate::from_ymd_opt(2024, 1, day).unwrap();
        vec![vec![(d(7), 7.0), (d(7), 0.1), (d(14), 2.5)], vec![], vec![]]
    }

    /// Migrates `$pool` up to just before `$version`, stores [`FILL`] and [`SNAPSHOTS`] the old
    /// way, then applies the remaining migrations.
    macro_rules! before_and_after {
        ($pool:expr, $migrations:literal, $version:expr) => {{
            let pool = $pool;
            migrations_before(sqlx::migrate!($migrations), $version)
                .run(&pool)
                .await
                .unwrap();
            let mut q = sqlx::query(FILL);
            for _ in 0..5 {
                q = q.bind(uuid::Uuid::now_v7());
            }
            q.execute(&pool).await.unwrap();
            let mut q = sqlx::query(SNAPSHOTS);
            for _ in 0..2 {
                q = q.bind(uuid::Uuid::now_v7());
            }
            q.execute(&pool).await.unwrap();
            sqlx::migrate!($migrations).run(&pool).await.unwrap();
            pool.close().await;
        }};
    }

    #[tokio::test]
    async fn postgres() {
        let db = TestDb::postgres().await;
        before_and_after!(
            sqlx::PgPool::connect(&db.url).await.unwrap(),
            "migrations/postgres",
            8
        );
        let pg = kwi_store::PgStore::connect(&db.url).await.unwrap();
        assert_eq!(pg.volumes_many(&keys()).await.unwrap(), want());
        db.cleanup().await;
    }

    #[tokio::test]
    async fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kwi.db");
        before_and_after!(
            sqlx::SqlitePool::connect(&format!("sqlite:{}?mode=rwc", path.display()))
                .await
                .unwrap(),
            "migrations/sqlite",
            6
        );
        let sqlite = kwi_store::SqliteStore::open(path.to_str().unwrap())
            .await
            .unwrap();
        assert_eq!(sqlite.volumes_many(&keys()).await.unwrap(), want());
    }
}

async fn a_failing_row_rolls_back_the_whole_import(app: TestApp) {
    let (name, store) = (app.name, &app.store);
    store.import(&[obs("kept", 1, 1.0)], &|_| {}).await.unwrap();
    // 1,500 good rows (more than one batch) and then one the database refuses (a share above 1,
    // which validation would have caught: here it reaches the CHECK constraint on purpose).
    let mut rows: Vec<Observation> = (0..1500)
        .map(|i| obs(&format!("kw {i}"), 1 + (i % 28) as u32, i as f64))
        .collect();
    let mut bad = obs("bad", 2, 1.0);
    bad.values[8] = Some(2.0);
    rows.push(bad);
    let err = store.import(&rows, &|_| {}).await;
    assert!(
        err.is_err(),
        "{name}: the CHECK constraint must refuse the row"
    );
    assert_eq!(
        store.observation_count().await.unwrap(),
        1,
        "{name}: nothing of the failed import may remain"
    );
    assert_eq!(store.keyword_count().await.unwrap(), 1, "{name}");
}
backend_tests!(a_failing_row_rolls_back_the_whole_import);

async fn unknown_keyword_has_no_snapshot_and_empty_history(app: TestApp) {
    let (name, store) = (app.name, &app.store);
    let k = kw("never seen");
    assert!(
        store
            .snapshot(Platform::Amazon, &k)
            .await
            .unwrap()
            .is_none(),
        "{name}"
    );
    assert!(
        store
            .history(Platform::Amazon, &k)
            .await
            .unwrap()
            .is_empty(),
        "{name}"
    );
}
backend_tests!(unknown_keyword_has_no_snapshot_and_empty_history);

/// SQLite keeps forecasts as JSON text: every value is stored as serde_json writes it (so it reads
/// back bit for bit), ids are 16-byte version-7 UUIDs, distinct, and a batch larger than one
/// multi-row statement (1,200 rows: three of them) is stored whole.
#[tokio::test]
async fn sqlite_predictions_are_stored_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = kwi_store::SqliteStore::open(dir.path().join("p.db").to_str().unwrap())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let odd = [
        0.1 + 0.2,
        1.0 / 3.0,
        5e-324,
        f64::MAX,
        2f64.powi(53) + 2.0,
        0.0,
        1e20,
    ];
    let rows: Vec<kwi_store::PredictionRecord> = (0..1200)
        .map(|i| kwi_store::PredictionRecord {
            platform: Platform::Etsy,
            keyword: Keyword::parse(&format!("tarot \"deck\" {i}")).unwrap(),
            model_version: "v\\1".into(),
            data_as_of: NaiveDate::from_ymd_opt(2024, 1, 7).unwrap(),
            horizon: 7,
            mean: odd.to_vec(),
            levels: vec![80.0, 97.5],
            lo: odd
                .iter()
                .map(|v| v / 2.0)
                .chain(odd.iter().map(|v| v / 3.0))
                .collect(),
            hi: odd.iter().map(|v| v * 0.9).chain(odd.to_vec()).collect(),
        })
        .collect();
    store.insert_predictions(&rows).await.unwrap();
    type Stored = (Vec<u8>, String, String, String, String, i64, String, String);
    let stored: Vec<Stored> = sqlx::query_as(
        "SELECT id, keyword, model_version, data_as_of, platform, horizon, mean, quantiles \
             FROM predictions ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(stored.len(), rows.len());
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (r, (id, keyword, version, as_of, platform, h, mean, q)) in rows.iter().zip(&stored) {
        assert_eq!(id.len(), 16);
        assert_eq!(uuid::Uuid::from_slice(id).unwrap().get_version_num(), 7);
        assert_eq!(
            (
                keyword.as_str(),
                version.as_str(),
                as_of.as_str(),
                platform.as_str(),
                *h
            ),
            (r.keyword.as_str(), "v\\1", "2024-01-07", "etsy", 7)
        );
        let mean: Vec<f64> = serde_json::from_str(mean).unwrap();
        assert_eq!(bits(&mean), bits(&r.mean));
        assert_eq!(q, &r.quantiles_json().to_string());
        let q: serde_json::Value = serde_json::from_str(q).unwrap();
        let lo: Vec<f64> = serde_json::from_value(q["97.5"]["lo"].clone()).unwrap();
        assert_eq!(bits(&lo), bits(&r.lo[7..]));
    }
    let distinct: std::collections::HashSet<_> = stored.iter().map(|s| &s.0).collect();
    assert_eq!(distinct.len(), rows.len());
}

/// A write while another connection holds SQLite's write lock waits for it (the busy timeout)
/// instead of failing at once with `database is locked`: the store begins every write
/// transaction with `BEGIN IMMEDIATE`. (With a plain `BEGIN`, the waiting write's statement has
/// already read, and SQLite refuses to upgrade a read past another connection's commit.)
#[tokio::test]
async fn sqlite_a_write_waits_for_another_writer_instead_of_failing() {
    use sqlx::sqlite::SqlitePoolOptions;
    let app = TestApp::sqlite().await;
    let (user, _) = app
        .user(
            "writer@kwi.test",
            kwi_store::Role::Customer,
            kwi_store::PlanName::Pro,
        )
        .await;
    let other = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&app.db_url)
        .await
        .unwrap();
    let mut held = other.begin_with("BEGIN IMMEDIATE").await.unwrap();
    sqlx::query("UPDATE platforms SET name = name")
        .execute(&mut *held)
        .await
        .unwrap();
    let store = app.store.clone();
    let write = tokio::spawn(async move {
        let keyword = Keyword::parse("waits for the lock").unwrap();
        store
            .watch(
                user,
                kwi_store::Source::Etsy,
                &[keyword],
                kwi_store::Cadence::Weekly,
                chrono::Utc::now(),
            )
            .await
    });
    // The other writer holds the lock for 300 ms, then commits.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!write.is_finished(), "the write must wait for the lock");
    held.commit().await.unwrap();
    let written = write
        .await
        .unwrap()
        .expect("the write succeeds once the lock is free");
    assert_eq!(written.len(), 1);
    assert!(written[0].1, "a new watch");
    other.close().await;
    app.cleanup().await;
}
