//! `kwi import` end to end: the real executable, real reference files, both backends, each from a
//! database nothing has touched yet.

use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::{TestDb, backend_tests, data_file};

fn kwi(db_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kwi"))
        .args(["import", "--quiet"])
        .args(args)
        .env("KWI_DATABASE_URL", db_url)
        .env_remove("KWI_REDIS_URL")
        .output()
        .expect("run kwi")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kwi failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn count(url: &str) -> i64 {
    let store = kwi_store::connect(url).await.unwrap();
    store.observation_count().await.unwrap()
}

async fn m4_train_and_test_import_and_reimport_is_a_noop(db: TestDb) {
    let url = db.url.as_str();
    let train = data_file("m4/Weekly-train.csv");
    let test = data_file("m4/Weekly-test.csv");
    let out = ok(&kwi(url, &[train.to_str().unwrap(), "--end", "2018-12-23"]));
    // 359 series; lengths 80..2,597 add up to 366,912 values.
    assert!(out.contains("359 rows read"), "{out}");
    assert!(
        out.contains("inserted 366912, updated 0, unchanged 0"),
        "{out}"
    );
    assert!(out.contains("359 keyword(s)"), "{out}");
    assert!(out.contains(".. 2018-12-23"), "{out}");
    let out = ok(&kwi(
        url,
        &[test.to_str().unwrap(), "--start", "2018-12-30"],
    ));
    assert!(
        out.contains("inserted 4667, updated 0, unchanged 0"),
        "{out}"
    );
    assert!(out.contains("periods 2018-12-30 .. 2019-03-24"), "{out}");
    let out = ok(&kwi(url, &[train.to_str().unwrap(), "--end", "2018-12-23"]));
    assert!(
        out.contains("inserted 0, updated 0, unchanged 366912"),
        "{out}"
    );
    assert_eq!(count(url).await, 366_912 + 4_667);
}
backend_tests!(m4_train_and_test_import_and_reimport_is_a_noop);

async fn gtrends_import_succeeds_and_is_idempotent(db: TestDb) {
    let file = data_file("samples/gtrends_pt_weekly_topics.csv");
    let out = ok(&kwi(&db.url, &[file.to_str().unwrap()]));
    assert!(out.contains("inserted 21728"), "{out}");
    assert!(out.contains("32 keyword(s)"), "{out}");
    assert!(out.contains("periods 2006-01-01 .. 2018-12-30"), "{out}");
    let out = ok(&kwi(&db.url, &[file.to_str().unwrap()]));
    assert!(
        out.contains("inserted 0, updated 0, unchanged 21728"),
        "{out}"
    );
}
backend_tests!(gtrends_import_succeeds_and_is_idempotent);

fn write(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

/// One valid row, imported first.
const GOOD: &str = "platform,keyword,period_start,search_volume\netsy,Tarot Deck,2024-01-07,120\n";

/// One valid row (line 2) and six bad ones (lines 3 to 8).
const BAD: &str = "platform,keyword,period_start,search_volume,cpc\n\
     etsy,tarot cards,2024-01-07,100,0.5\n\
     etsy,tarot cards,2024-01-14,-5,0.5\n\
     walmart,tarot cards,2024-01-21,7,\n\
     etsy,,2024-01-28,7,\n\
     etsy,tarot cards,2024-13-01,7,\n\
     etsy,tarot cards,2024-02-04,lots,\n\
     etsy,Tarot  CARDS,2024-01-07,100,0.5\n";

async fn bad_rows_are_reported_by_line_and_nothing_is_written(db: TestDb) {
    let url = db.url.as_str();
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.csv", GOOD);
    let bad = write(dir.path(), "bad.csv", BAD);
    ok(&kwi(url, &[&good]));
    assert_eq!(count(url).await, 1);
    let out = kwi(url, &[&good, &bad]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        format!("{bad}:3: search_volume: -5 is negative"),
        format!("{bad}:4: platform: unknown platform `walmart`"),
        format!("{bad}:5: keyword: keyword is empty"),
        format!("{bad}:6: period_start: `2024-13-01` is not a date"),
        format!("{bad}:7: search_volume: `lots` is not a number"),
        format!("{bad}:8: keyword: duplicate of line 2"),
        "6 row(s) rejected".to_string(),
        "nothing was imported".to_string(),
    ] {
        assert!(err.contains(&expected), "missing `{expected}` in:\n{err}");
    }
    assert_eq!(
        count(url).await,
        1,
        "a rejected import leaves the database unchanged"
    );
}
backend_tests!(bad_rows_are_reported_by_line_and_nothing_is_written);

/// --skip-invalid imports the valid rows and still reports the bad ones.
async fn skip_invalid_imports_the_valid_rows_and_reports_the_bad(db: TestDb) {
    let url = db.url.as_str();
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.csv", GOOD);
    let bad = write(dir.path(), "bad.csv", BAD);
    ok(&kwi(url, &[&good]));
    assert_eq!(count(url).await, 1);
    let out = kwi(url, &[&bad, "--skip-invalid"]);
    let stdout = ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains(":3: search_volume"));
    assert!(
        stdout.contains("inserted 1,") && stdout.contains("6 rejected"),
        "{stdout}"
    );
    assert_eq!(count(url).await, 2);
}
backend_tests!(skip_invalid_imports_the_valid_rows_and_reports_the_bad);

#[tokio::test]
async fn file_level_problems_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("kwi.db").display());
    let no_kw = write(
        dir.path(),
        "nokw.csv",
        "platform,period_start,search_volume\netsy,2024-01-07,1\n",
    );
    let out = kwi(&db, &[&no_kw]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot tell the layout"), "{err}");

    let no_platform = write(
        dir.path(),
        "noplat.csv",
        "keyword,period_start,search_volume\ntarot,2024-01-07,1\n",
    );
    let err = String::from_utf8_lossy(&kwi(&db, &[&no_platform]).stderr).to_string();
    assert!(
        err.contains("no `platform` column and no --platform given"),
        "{err}"
    );
    ok(&kwi(&db, &[&no_platform, "--platform", "etsy"]));

    let m4 = data_file("m4/Weekly-test.csv");
    let err = String::from_utf8_lossy(&kwi(&db, &[m4.to_str().unwrap()]).stderr).to_string();
    assert!(
        err.contains("pass --start DATE") && err.contains("--end DATE"),
        "{err}"
    );

    let missing = dir.path().join("missing.csv");
    let err = String::from_utf8_lossy(&kwi(&db, &[missing.to_str().unwrap()]).stderr).to_string();
    assert!(err.contains("missing.csv: cannot read file"), "{err}");

    let xlsx = write(dir.path(), "book.xlsx", "x");
    let err = String::from_utf8_lossy(&kwi(&db, &[&xlsx]).stderr).to_string();
    assert!(err.contains("unsupported file extension `.xlsx`"), "{err}");
}
