//! `kwi-train` end to end on the real Google Trends file: forecast CSV contract, determinism,
//! artifact round trip through the registry, schema guard, and clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gtrends() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/samples/gtrends_pt_weekly_topics.csv")
}

fn kwi_train(args: &[&str], data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kwi-train"))
        .args(args)
        .env("KWI_DATA_DIR", data_dir)
        .env_remove("KWI_DATABASE_URL")
        .output()
        .expect("run kwi-train")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "kwi-train failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Parses the forecast CSV into (id, step, [mean, lo80, hi80, lo95, hi95]).
fn read_csv(path: &Path) -> (String, Vec<(String, usize, Vec<f64>)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_string();
    let rows = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[2..].iter().map(|v| v.parse().unwrap()).collect(),
            )
        })
        .collect();
    (header, rows)
}

const QUICK: [&str; 2] = ["--steps", "40"];

fn marketplace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/marketplace")
}

/// The competition model on the real listing files: artifact and report written, registered without
/// activation (the insights job keeps the composite), then activated by publishing it again.
#[test]
fn competition_model_is_fitted_published_inactive_then_activated() {
    let dir = tempfile::tempdir().unwrap();
    let art = dir.path().join("comp");
    let stdout = ok(kwi_train(
        &[
            "fit-competition",
            "--listings",
            marketplace().to_str().unwrap(),
            "--out",
            art.to_str().unwrap(),
        ],
        dir.path(),
    ));
    assert!(stdout.contains("held-out Spearman"), "{stdout}");
    for f in [
        "manifest.json",
        "competition.json",
        "report.md",
        "report.json",
        "scores.parquet",
        "observations.csv",
        "bands.parquet",
    ] {
        assert!(art.join(f).exists(), "{f} missing from the artifact");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(art.join("manifest.json")).unwrap()).unwrap();
    let version = manifest["version"].as_str().unwrap();
    assert_eq!(manifest["kind"], "competition");

    let competition_model = || {
        let out = kwi_train(&["insights"], dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        stderr
            .split("competition model ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no model named in {stderr}"))
            .to_string()
    };
    let stdout = ok(kwi_train(
        &[
            "publish",
            "--artifact",
            art.to_str().unwrap(),
            "--no-activate",
        ],
        dir.path(),
    ));
    assert_eq!(
        stdout.trim(),
        format!("published competition model {version}")
    );
    assert_eq!(competition_model(), "builtin-composite-v1");

    let stdout = ok(kwi_train(
        &["publish", "--artifact", art.to_str().unwrap()],
        dir.path(),
    ));
    assert!(stdout.contains("now active"), "{stdout}");
    assert_eq!(competition_model(), version);
    let stdout = ok(kwi_train(
        &["publish", "--artifact", art.to_str().unwrap()],
        dir.path(),
    ));
    assert!(stdout.contains("nothing to do"), "{stdout}");
}

#[test]
fn forecast_csv_has_one_row_per_series_and_step_with_sane_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fc.csv");
    let g = gtrends();
    let mut args = vec![
        "forecast",
        "--train",
        g.to_str().unwrap(),
        "--format",
        "gtrends",
        "--horizon",
        "13",
        "--holdout",
        "13",
        "--levels",
        "80,95",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(QUICK);
    ok(kwi_train(&args, dir.path()));
    let (header, rows) = read_csv(&out);
    assert_eq!(header, "id,step,mean,lo_80,hi_80,lo_95,hi_95");
    assert_eq!(rows.len(), 32 * 13);
    assert_eq!(
        rows[0].0, "auto insurance",
        "series in keyword order, ids as the input spells them"
    );
    assert!(rows.iter().any(|r| r.0 == "automotive industry"));
    assert!(rows.iter().any(|r| r.0 == "t-shirt"));
    for (id, step, v) in &rows {
        assert!((1..=13).contains(step));
        let [mean, lo80, hi80, lo95, hi95] = v[..] else {
            panic!("5 numbers")
        };
        assert!(lo95 >= 0.0, "{id}: never negative");
        assert!(
            lo95 <= lo80 && lo80 <= mean && mean <= hi80 && hi80 <= hi95,
            "{id} step {step}: {v:?}"
        );
    }
    // The interval radius widens (never narrows) with the horizon, per series. (The lower bound is
    // clipped at 0, so hi - lo itself can shrink where the mean falls towards 0; hi - mean cannot.)
    for s in rows.chunks(13) {
        for w in s.windows(2) {
            let (r0, r1) = (w[0].2[4] - w[0].2[0], w[1].2[4] - w[1].2[0]);
            assert!(r1 >= r0 - 1e-9, "{}: {r0} then {r1}", s[0].0);
        }
    }
}

#[test]
fn same_seed_same_weights_and_published_model_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let g = gtrends();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    for out in [&a, &b] {
        let mut args = vec![
            "fit",
            "--train",
            g.to_str().unwrap(),
            "--format",
            "gtrends",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(QUICK);
        ok(kwi_train(&args, dir.path()));
    }
    let wa = std::fs::read(a.join("mlp.safetensors")).unwrap();
    let wb = std::fs::read(b.join("mlp.safetensors")).unwrap();
    assert_eq!(wa, wb, "same seed and data must give identical weights");
    for f in [
        "manifest.json",
        "linear.json",
        "report.md",
        "report.json",
        "config.toml",
    ] {
        assert!(a.join(f).exists(), "{f} missing from the artifact");
    }
    assert!(
        std::fs::read_dir(&a).unwrap().any(|e| e
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "png"))
    );

    // Publish into the embedded registry, then forecast with the published version.
    let stdout = ok(kwi_train(
        &["publish", "--artifact", a.to_str().unwrap()],
        dir.path(),
    ));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("manifest.json")).unwrap()).unwrap();
    let version = manifest["version"].as_str().unwrap();
    assert!(
        stdout.contains(&format!("published forecaster model {version} (active)")),
        "{stdout}"
    );
    let fc = dir.path().join("fc.csv");
    ok(kwi_train(
        &[
            "forecast",
            "--train",
            g.to_str().unwrap(),
            "--format",
            "gtrends",
            "--model",
            version,
            "--out",
            fc.to_str().unwrap(),
        ],
        dir.path(),
    ));
    assert_eq!(read_csv(&fc).1.len(), 32 * 13);

    // A model built on another feature schema is refused.
    let mut m = manifest.clone();
    m["feature_schema_hash"] = "0000000000000000".into();
    std::fs::write(b.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let out = kwi_train(&["publish", "--artifact", b.to_str().unwrap()], dir.path());
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("feature schema"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_configuration_and_input_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let g = gtrends();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "horizn = 3\n").unwrap();
    let out = kwi_train(
        &[
            "fit",
            "--train",
            g.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("horizn"), "{err}");
    let out = kwi_train(
        &["fit", "--train", g.to_str().unwrap(), "--horizon", "0"],
        dir.path(),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("horizon: `0` is not a whole number of periods in 1..=104")
    );
    let out = kwi_train(&["fit", "--train", "/nonexistent.csv"], dir.path());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let out = kwi_train(
        &[
            "evaluate",
            "--train",
            g.to_str().unwrap(),
            "--holdout",
            "700",
        ],
        dir.path(),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("too short"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Monthly data end to end: the calendar-month panel is recognised as monthly from its dates
/// (season 12, horizon 12), the weekly file read with `--freq monthly` is the same panel (each month
/// the mean of its weeks), and a history too short for the holdout is refused by name.
#[test]
fn monthly_panel_is_read_as_monthly_and_matches_the_weekly_file_averaged() {
    let dir = tempfile::tempdir().unwrap();
    let monthly = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../data/samples/gtrends_pt_monthly_topics.csv");
    let (a, b) = (dir.path().join("m.csv"), dir.path().join("w.csv"));
    let run = |train: &Path, extra: &[&str], out: &Path| {
        let mut args = vec![
            "forecast",
            "--train",
            train.to_str().unwrap(),
            "--holdout",
            "12",
        ];
        args.extend(extra);
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(QUICK);
        kwi_train(&args, dir.path())
    };
    let out = run(&monthly, &[], &a);
    let note = String::from_utf8_lossy(&out.stderr).to_string();
    ok(out);
    assert!(
        note.contains("monthly"),
        "says it read monthly data: {note}"
    );
    let g = gtrends();
    ok(run(&g, &["--freq", "monthly"], &b));
    let (header, from_monthly) = read_csv(&a);
    let (_, from_weekly) = read_csv(&b);
    assert_eq!(header, "id,step,mean,lo_80,hi_80,lo_95,hi_95");
    assert_eq!(
        from_monthly.len(),
        32 * 12,
        "horizon 12 by default for monthly data"
    );
    assert_eq!(from_monthly.len(), from_weekly.len());
    for (m, w) in from_monthly.iter().zip(&from_weekly) {
        assert_eq!((&m.0, m.1), (&w.0, w.1));
        // The panel file rounds to 12 significant digits; the forecasts agree to that.
        for (x, y) in m.2.iter().zip(&w.2) {
            assert!(
                (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                "{} step {}: {x} vs {y}",
                m.0,
                m.1
            );
        }
    }
    let out = kwi_train(
        &[
            "forecast",
            "--train",
            monthly.to_str().unwrap(),
            "--holdout",
            "155",
            "--out",
            a.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("too short to hold out 155 periods"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kwi-train reforecast` on the embedded store: every stored keyword queued in chunks, once per
/// run; an empty store, a chunk size out of range and a `--wait` with no worker get clear errors.
#[test]
fn reforecast_queues_every_stored_keyword_in_chunks_once_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = kwi_train(&["reforecast"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds no keywords") && err.contains("kwi import"),
        "{err}"
    );

    let url = format!("sqlite:{}", dir.path().join("kwi.db").display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stored = rt.block_on(async {
        let store = kwi_store::open(&url).await.unwrap();
        let file = kwi_features::ingest::read_observations(
            &gtrends(),
            &kwi_features::ingest::IngestOptions::default(),
        )
        .unwrap();
        store.import(&file.rows, &|_| {}).await.unwrap();
        store.keyword_count().await.unwrap()
    });
    assert_eq!(stored, 32, "the Google Trends panel has 32 topics");

    let stdout = ok(kwi_train(&["reforecast", "--chunk", "10"], dir.path()));
    assert!(
        stdout.contains("32 keyword(s) in 4 chunk(s) of up to 10; 4 chunk(s) queued"),
        "{stdout}"
    );
    // Nothing changed: the same run, with its first chunks (whatever --chunk says now).
    let out = kwi_train(&["reforecast", "--chunk", "7"], dir.path());
    let again = ok(out.clone());
    assert!(
        again.contains(
            "was already queued: 32 keyword(s) in 4 chunk(s); 0 dead chunk(s) queued again"
        ),
        "{again}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing new"));
    // A named run is a new run.
    let named = ok(kwi_train(
        &["reforecast", "--chunk", "32", "--run", "nightly"],
        dir.path(),
    ));
    assert!(
        named.contains("run nightly: 32 keyword(s) in 1 chunk(s)"),
        "{named}"
    );

    let out = kwi_train(&["reforecast", "--chunk", "0"], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1..=100000"));

    let out = kwi_train(
        &[
            "reforecast",
            "--run",
            "nightly",
            "--wait",
            "--timeout-secs",
            "1",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gave up after 1 s: 1 chunk(s) queued") && err.contains("kwi worker"),
        "{err}"
    );
}
