//! `kwi-train fit-competition`: the competition model from listing files, evaluated on a held-out
//! split, written as an artifact with its report; and `kwi-train insights`.
//!
//! Input files are recognised by their columns: the Amazon.in product layout (`product_id,
//! category, discounted_price, discount_percentage, rating_count, product_link, ...`), the Etsy
//! listing layout (`listing, cost, store, review, crowd`; one search theme, `--etsy-keyword`) or the
//! listing layout of `kwi_features::competition::LISTING_COLUMNS`. A folder is searched recursively;
//! files in it with another layout are skipped with a note, a file named explicitly must be a
//! listing file.
//!
//! The label is the market-revealed signal the Amazon.in data carries: the **mean discount %** of a
//! category's products (see docs/competition.md for why). Keywords without it (Etsy) are scored and
//! enter the percentile reference, but do not teach the weights.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::Args;
use kwi_features::Keyword;
use kwi_features::competition::{
    LISTING_COLUMNS, category_words, competition_features, competition_schema,
    read_amazon_listings, read_etsy_listings,
};
use kwi_features::ingest::read_frame;
use kwi_models::artifact::{CompetitionManifest, save_competition};
use kwi_models::competition::{
    BandStat, CompetitionInput, CompetitionModel, CompetitionParams, ListingStats, band,
    band_calibration, fit, spearman, split,
};
use kwi_predict::insights::{self, CompetitionScorer};
use polars::prelude::*;

use crate::pipeline::bar;

/// Name of the label learned against.
pub const LABEL: &str = "amazon_in_category_mean_discount_pct";

/// `kwi-train fit-competition`.
#[derive(Debug, Clone, Args)]
pub struct FitCompetitionArgs {
    /// Listing file or folder (searched recursively), e.g. data/marketplace
    #[arg(long)]
    pub listings: PathBuf,
    /// Artifact folder (default: DATA_DIR/artifacts/VERSION); refused if it exists and is not empty
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed of the held-out split (same seed and data → identical model)
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of the labelled keywords held out for evaluation
    #[arg(long, default_value_t = 0.3)]
    pub test_fraction: f64,
    /// Ridge penalty on standardised data
    #[arg(long, default_value_t = 1.0)]
    pub penalty: f64,
    /// Keywords with fewer listings than this are left out (their features are noise)
    #[arg(long, default_value_t = 3)]
    pub min_listings: u32,
    /// Keyword of Etsy listing files (one search theme per file; the reference file is "tarot")
    #[arg(long, default_value = "tarot")]
    pub etsy_keyword: String,
    /// Period the listing files describe (they carry no date)
    #[arg(long, default_value = "2023-01-01")]
    pub period: NaiveDate,
    /// Register the artifact in the models registry and make it the active competition model
    #[arg(long)]
    pub publish: bool,
    /// Database holding the registry (with --publish; default: the embedded SQLite file)
    #[arg(long, env = "KWI_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory of the embedded database and artifacts
    #[arg(long, env = "KWI_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
}

/// `kwi-train insights`.
#[derive(Debug, Clone, Args)]
pub struct InsightsArgs {
    /// Database to read keywords from and store insights in (default: the embedded SQLite file)
    #[arg(long, env = "KWI_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory of the embedded database
    #[arg(long, env = "KWI_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Forecast horizon in weeks over which growth is measured (1..=104)
    #[arg(long, default_value_t = 13)]
    pub horizon: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Amazon,
    Etsy,
    Listing,
}

const AMAZON_COLUMNS: [&str; 5] = [
    "product_id",
    "category",
    "discounted_price",
    "rating_count",
    "product_link",
];
const ETSY_COLUMNS: [&str; 5] = ["listing", "cost", "store", "review", "crowd"];

fn layout_of(columns: &HashSet<String>) -> Option<Layout> {
    let has = |c: &[&str]| c.iter().all(|c| columns.contains(*c));
    if has(&AMAZON_COLUMNS) {
        Some(Layout::Amazon)
    } else if has(&ETSY_COLUMNS) {
        Some(Layout::Etsy)
    } else if has(&LISTING_COLUMNS) {
        Some(Layout::Listing)
    } else {
        None
    }
}

fn is_data_file(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("csv" | "parquet" | "pq" | "arrow" | "ipc" | "feather")
    )
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read folder {}", dir.display()))?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_data_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// Everything read from the listing files.
struct Read {
    listings: DataFrame,
    /// (platform, keyword) → label.
    labels: HashMap<(String, String), f64>,
    files: Vec<serde_json::Value>,
}

fn mean_discounts(df: &DataFrame, file: &Path) -> anyhow::Result<HashMap<(String, String), f64>> {
    let col = |name: &str| {
        anyhow::Context::with_context(df.column(name).and_then(|c| c.str()), || {
            format!("{}: column `{name}` is missing or not text", file.display())
        })
    };
    let (id, cat, disc) = (
        col("product_id")?,
        col("category")?,
        col("discount_percentage")?,
    );
    let mut seen = HashSet::new();
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for row in 0..df.height() {
        let segment = cat.get(row).unwrap_or("").rsplit('|').next().unwrap_or("");
        let Ok(kw) = Keyword::parse(&category_words(segment)) else {
            continue; // reported by the listing parser
        };
        let product = id.get(row).unwrap_or("").trim().to_string();
        if !seen.insert((kw.as_str().to_string(), product)) {
            continue;
        }
        let cell = disc.get(row).unwrap_or("").trim();
        let Ok(v) = cell.trim_end_matches('%').trim().parse::<f64>() else {
            eprintln!(
                "note: {}:{}: discount_percentage: `{cell}` is not a percentage; row not in the label",
                file.display(),
                row + 2
            );
            continue;
        };
        let e = sums.entry(kw.as_str().to_string()).or_default();
        e.0 += v;
        e.1 += 1;
    }
    Ok(sums
        .into_iter()
        .map(|(k, (s, n))| (("amazon".to_string(), k), s / n as f64))
        .collect())
}

fn read_listings(a: &FitCompetitionArgs) -> anyhow::Result<Read> {
    let explicit = a.listings.is_file();
    let mut files = Vec::new();
    if a.listings.is_dir() {
        walk(&a.listings, &mut files)?;
    } else if explicit {
        files.push(a.listings.clone());
    } else {
        bail!("{}: no such file or folder", a.listings.display());
    }
    let etsy_kw = Keyword::parse(&a.etsy_keyword)
        .with_context(|| format!("--etsy-keyword `{}`", a.etsy_keyword))?;
    let pb = bar(files.len() as u64, "reading listing files");
    let mut frames: Vec<DataFrame> = Vec::new();
    let mut labels = HashMap::new();
    let mut report = Vec::new();
    for f in &files {
        pb.set_message(f.display().to_string());
        let (df, _) = read_frame(f).with_context(|| format!("{}: cannot read", f.display()))?;
        let columns: HashSet<String> = df
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let Some(layout) = layout_of(&columns) else {
            let mut found: Vec<&String> = columns.iter().collect();
            found.sort();
            let why = format!(
                "{}: not a listing file: expected the Amazon.in product columns ({}), the Etsy listing columns ({}) or the listing layout ({}); found {}",
                f.display(),
                AMAZON_COLUMNS.join(", "),
                ETSY_COLUMNS.join(", "),
                LISTING_COLUMNS.join(", "),
                found
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if explicit {
                bail!(why);
            }
            pb.suspend(|| eprintln!("note: skipped {why}"));
            pb.inc(1);
            continue;
        };
        let parsed = match layout {
            Layout::Amazon => {
                labels.extend(mean_discounts(&df, f)?);
                Some(read_amazon_listings(f, a.period)?)
            }
            Layout::Etsy => Some(read_etsy_listings(f, &etsy_kw, a.period)?),
            Layout::Listing => None,
        };
        let (frame, errors, rows) = match parsed {
            Some(l) => {
                pb.suspend(|| {
                    for e in l.errors.iter().take(5) {
                        eprintln!("warning: {e}");
                    }
                    if l.errors.len() > 5 {
                        eprintln!(
                            "warning: ... {} more in {}",
                            l.errors.len() - 5,
                            f.display()
                        );
                    }
                });
                (l.frame, l.errors.len(), l.rows_read)
            }
            None => {
                let h = df.height();
                (
                    anyhow::Context::with_context(df.select(LISTING_COLUMNS), || {
                        format!("{}: listing layout", f.display())
                    })?,
                    0,
                    h,
                )
            }
        };
        report.push(serde_json::json!({
            "file": f.display().to_string(), "layout": format!("{layout:?}").to_lowercase(),
            "rows": rows, "listings": frame.height(), "cell_errors": errors,
        }));
        frames.push(frame);
        pb.inc(1);
    }
    pb.finish_and_clear();
    let mut it = frames.into_iter();
    let Some(mut listings) = it.next() else {
        bail!(
            "{}: no listing file found (expected .csv/.parquet/.arrow files with listing columns)",
            a.listings.display()
        );
    };
    for f in it {
        anyhow::Context::context(
            listings.vstack_mut(&f).map(|_| ()),
            "listing files have different column types",
        )?;
    }
    Ok(Read {
        listings,
        labels,
        files: report,
    })
}

/// The keywords' listing features (at least `min` listings) in the long observation layout that
/// `kwi import` reads, so a store gets the same inputs the model was fitted on and the insights job
/// scores them. No search volume: the listing files carry none.
fn listing_observations(features: &DataFrame, min: u32) -> anyhow::Result<DataFrame> {
    Ok(features
        .clone()
        .lazy()
        .filter(col("listing_count").gt_eq(lit(min)))
        .select([
            col("platform"),
            col("keyword"),
            col("period_start"),
            col("listing_count"),
            col("price_median"),
            col("price_p25"),
            col("price_p75"),
            col("top10_review_median").alias("review_count_median"),
            col("top10_rating_mean").alias("rating_mean"),
            col("top10_review_share"),
            col("sponsored_share"),
            col("cpc_mean").alias("cpc"),
        ])
        .collect()?)
}

/// One keyword's row for the model.
#[derive(Debug, Clone)]
struct Row {
    platform: String,
    keyword: String,
    listings: u32,
    input: CompetitionInput,
    label: Option<f64>,
}

fn rows_from_features(
    f: &DataFrame,
    labels: &HashMap<(String, String), f64>,
    min: u32,
) -> anyhow::Result<Vec<Row>> {
    let s = |c: &str| -> anyhow::Result<Vec<Option<String>>> {
        Ok(f.column(c)?
            .str()?
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    };
    let n = |c: &str| -> anyhow::Result<Vec<Option<f64>>> {
        Ok(f.column(c)?
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .collect())
    };
    let (platform, keyword) = (s("platform")?, s("keyword")?);
    let count = n("listing_count")?;
    let (lpd, rev, share, rating) = (
        n("listings_per_demand")?,
        n("top10_review_median")?,
        n("top10_review_share")?,
        n("top10_rating_mean")?,
    );
    let (med, p25, p75) = (n("price_median")?, n("price_p25")?, n("price_p75")?);
    let (sp, cpc) = (n("sponsored_share")?, n("cpc_mean")?);
    let mut out = Vec::new();
    for i in 0..f.height() {
        let listings = count[i].unwrap_or(0.0) as u32;
        if listings < min {
            continue;
        }
        let (p, k) = (
            platform[i].clone().unwrap_or_default(),
            keyword[i].clone().unwrap_or_default(),
        );
        out.push(Row {
            label: labels.get(&(p.clone(), k.clone())).copied(),
            platform: p,
            keyword: k,
            listings,
            input: ListingStats {
                listing_count: count[i],
                listings_per_demand: lpd[i],
                top10_review_median: rev[i],
                top10_review_share: share[i],
                top10_rating_mean: rating[i],
                price_p25: p25[i],
                price_median: med[i],
                price_p75: p75[i],
                sponsored_share: sp[i],
                cpc: cpc[i],
            }
            .into(),
        });
    }
    Ok(out)
}

/// Fits on `train` (indices into `rows`): labels of those rows teach the weights; every train row
/// enters the percentile reference.
fn fit_rows(
    rows: &[Row],
    train: &[usize],
    params: &CompetitionParams,
    labelled: bool,
) -> anyhow::Result<CompetitionModel> {
    let x: Vec<CompetitionInput> = train.iter().map(|&i| rows[i].input.clone()).collect();
    let y: Vec<Option<f64>> = train.iter().map(|&i| rows[i].label).collect();
    Ok(fit(
        &x,
        labelled.then_some(y.as_slice()),
        params,
        Some(LABEL),
    )?)
}

/// Held-out figures for one model.
#[derive(Debug, Clone, serde::Serialize)]
struct Eval {
    n: usize,
    spearman: Option<f64>,
    bands: Vec<BandStat>,
    bands_increasing: bool,
}

fn evaluate(scores: &[f64], labels: &[f64]) -> Eval {
    let bands = band_calibration(scores, labels);
    let means: Vec<f64> = bands.iter().filter_map(|b| b.mean_label).collect();
    Eval {
        n: scores.len(),
        spearman: spearman(scores, labels),
        bands_increasing: means.len() >= 2 && means.windows(2).all(|w| w[0] < w[1]),
        bands,
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn band_table(e: &Eval) -> String {
    let mut md =
        String::from("| band | keywords | mean label (discount %) |\n| --- | ---: | ---: |\n");
    for b in &e.bands {
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            b.band,
            b.count,
            fmt_opt(b.mean_label, 1)
        ));
    }
    md
}

/// `kwi-train fit-competition`.
pub async fn cmd_fit_competition(a: FitCompetitionArgs) -> anyhow::Result<()> {
    let t = Instant::now();
    let params = CompetitionParams {
        penalty: a.penalty,
        test_fraction: a.test_fraction,
        seed: a.seed,
        ..CompetitionParams::default()
    };
    params.check()?;
    let read = read_listings(&a)?;
    eprintln!(
        "read {} listings from {} file(s); {} keywords carry the label",
        read.listings.height(),
        read.files.len(),
        read.labels.len()
    );
    let features = competition_features(&read.listings, None)?.collect()?;
    let rows = rows_from_features(&features, &read.labels, a.min_listings)?;
    let labelled: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].label.is_some())
        .collect();
    let unlabelled: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].label.is_none())
        .collect();
    if labelled.len() < 10 {
        bail!(
            "{} keyword(s) with at least {} listings carry the label ({LABEL}); at least 10 are needed to fit and evaluate (is the Amazon.in file among --listings?)",
            labelled.len(),
            a.min_listings
        );
    }
    // Held-out split of the labelled keywords; unlabelled ones (Etsy) only enter the reference.
    let (tr, te) = split(labelled.len(), params.test_fraction, params.seed);
    let train: Vec<usize> = tr
        .iter()
        .map(|&i| labelled[i])
        .chain(unlabelled.iter().copied())
        .collect();
    let test: Vec<usize> = te.iter().map(|&i| labelled[i]).collect();
    let model = fit_rows(&rows, &train, &params, true)?;
    let composite = fit_rows(&rows, &train, &params, false)?;
    let test_labels: Vec<f64> = test
        .iter()
        .map(|&i| rows[i].label.expect("labelled"))
        .collect();
    let score_all = |m: &CompetitionModel, idx: &[usize]| -> Vec<f64> {
        idx.iter().map(|&i| m.score(&rows[i].input).score).collect()
    };
    let held_out = evaluate(&score_all(&model, &test), &test_labels);
    let held_out_composite = evaluate(&score_all(&composite, &test), &test_labels);
    // 5-fold cross-validation over the same seeded order: every labelled keyword held out once.
    let folds = 5;
    let pb = bar(folds as u64, "cross-validation folds");
    let mut perm = labelled.clone();
    {
        use rand::SeedableRng;
        use rand::seq::SliceRandom;
        perm.shuffle(&mut rand::rngs::StdRng::seed_from_u64(params.seed));
    }
    let mut oof = vec![f64::NAN; rows.len()];
    for k in 0..folds {
        let hold: HashSet<usize> = perm.iter().copied().skip(k).step_by(folds).collect();
        let tr: Vec<usize> = (0..rows.len()).filter(|i| !hold.contains(i)).collect();
        let m = fit_rows(&rows, &tr, &params, true)?;
        for &i in &hold {
            oof[i] = m.score(&rows[i].input).score;
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let cv = evaluate(
        &labelled.iter().map(|&i| oof[i]).collect::<Vec<_>>(),
        &labelled
            .iter()
            .map(|&i| rows[i].label.expect("labelled"))
            .collect::<Vec<_>>(),
    );

    let version = format!(
        "comp-{}-{}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        a.seed
    );
    let schema_hash = competition_schema()?.hash();
    let metrics = serde_json::json!({
        "label": LABEL,
        "held_out": held_out, "held_out_composite": held_out_composite, "cv5": cv,
    });
    let manifest = CompetitionManifest {
        name: "competition-nnridge".into(),
        version: version.clone(),
        kind: kwi_models::artifact::ModelKind::Competition,
        feature_schema_hash: schema_hash,
        created_at: chrono::Utc::now().to_rfc3339(),
        params: params.clone(),
        training_data: serde_json::json!({
            "synthetic": false,
            "label": LABEL,
            "keywords": rows.len(), "labelled": labelled.len(), "train": train.len(), "test": test.len(),
            "min_listings": a.min_listings, "files": read.files,
        }),
        metrics: metrics.clone(),
    };
    let dir = a
        .out
        .clone()
        .unwrap_or_else(|| a.data_dir.join("artifacts").join(&version));
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "{} already exists and is not empty; choose another --out (an existing artifact is never overwritten)",
            dir.display()
        );
    }
    let staging = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    save_competition(&staging, &manifest, &model)?;

    // Report: per-keyword scores and per-band calibration as Parquet, and Markdown.
    let test_set: HashSet<usize> = test.iter().copied().collect();
    let scored: Vec<_> = (0..rows.len())
        .map(|i| model.score(&rows[i].input))
        .collect();
    let mut scores_df = df![
        "platform" => rows.iter().map(|r| r.platform.clone()).collect::<Vec<_>>(),
        "keyword" => rows.iter().map(|r| r.keyword.clone()).collect::<Vec<_>>(),
        "listings" => rows.iter().map(|r| r.listings).collect::<Vec<_>>(),
        "split" => (0..rows.len()).map(|i| if test_set.contains(&i) { "test" } else { "train" }).collect::<Vec<_>>(),
        "label" => rows.iter().map(|r| r.label).collect::<Vec<_>>(),
        "score" => scored.iter().map(|s| s.score).collect::<Vec<_>>(),
        "band" => scored.iter().map(|s| s.band.clone()).collect::<Vec<_>>(),
        "cv_score" => oof.iter().map(|v| (!v.is_nan()).then_some(*v)).collect::<Vec<_>>(),
        "contributions" => scored.iter().map(|s| serde_json::to_string(&s.contributions).unwrap_or_default()).collect::<Vec<_>>(),
    ]?;
    let mut bands_df = {
        let mut split_col = Vec::new();
        let mut band_col = Vec::new();
        let mut count = Vec::new();
        let mut mean = Vec::new();
        for (name, e) in [
            ("held_out", &held_out),
            ("cv5", &cv),
            ("held_out_composite", &held_out_composite),
        ] {
            for b in &e.bands {
                split_col.push(name);
                band_col.push(b.band.clone());
                count.push(b.count as u32);
                mean.push(b.mean_label);
            }
        }
        df!["evaluation" => split_col, "band" => band_col, "keywords" => count, "mean_label" => mean]?
    };
    kwi_features::export::write_parquet(&mut scores_df, &staging.join("scores.parquet"))?;
    let mut obs = listing_observations(&features, a.min_listings)?;
    let path = staging.join("observations.csv");
    let mut file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    anyhow::Context::with_context(CsvWriter::new(&mut file).finish(&mut obs), || {
        format!("cannot write {}", path.display())
    })?;
    kwi_features::export::write_parquet(&mut bands_df, &staging.join("bands.parquet"))?;
    std::fs::write(
        staging.join("report.json"),
        serde_json::to_vec_pretty(&serde_json::json!({ "manifest": manifest, "model": model }))?,
    )?;
    let mut md = format!(
        "# Competition model {version}\n\nLabel: `{LABEL}` (mean discount % of a category's products on Amazon.in). \
         {} keywords with ≥ {} listings ({} labelled); held-out split of the labelled ones: {} train / {} test (seed {}).\n\n",
        rows.len(),
        a.min_listings,
        labelled.len(),
        tr.len(),
        test.len(),
        a.seed
    );
    md.push_str("| evaluation | keywords | Spearman ρ (score vs label) | band means increase |\n| --- | ---: | ---: | --- |\n");
    for (name, e) in [
        ("held-out split, learned model", &held_out),
        ("held-out split, composite fallback", &held_out_composite),
        ("5-fold cross-validation (out of fold), learned", &cv),
    ] {
        md.push_str(&format!(
            "| {name} | {} | {} | {} |\n",
            e.n,
            fmt_opt(e.spearman, 3),
            if e.bands_increasing { "yes" } else { "no" }
        ));
    }
    md.push_str("\n## Band calibration, held-out split\n\n");
    md.push_str(&band_table(&held_out));
    md.push_str("\n## Band calibration, 5-fold out of fold\n\n");
    md.push_str(&band_table(&cv));
    md.push_str("\n## Weights (z-scored factors, non-negative)\n\n| factor | weight | source | centre | spread |\n| --- | ---: | --- | ---: | ---: |\n");
    for j in 0..model.factors.len() {
        md.push_str(&format!(
            "| {} | {:.3} | {} | {:.3} | {:.3} |\n",
            model.factors[j],
            model.weights[j],
            model.weight_source[j],
            model.center[j],
            model.scale[j]
        ));
    }
    md.push_str(&format!("\nBaseline (score at the centre of every factor): {:.1}.\n\n## Scores\n\n| platform | keyword | listings | split | label | score | band | top contributions |\n| --- | --- | ---: | --- | ---: | ---: | --- | --- |\n", model.baseline()));
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&x, &y| scored[y].score.total_cmp(&scored[x].score));
    for i in order {
        let r = &rows[i];
        let top: Vec<String> = scored[i]
            .contributions
            .iter()
            .take(3)
            .map(|c| format!("{} {:+.1}", c.label, c.points))
            .collect();
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} | {} | {} |\n",
            r.platform,
            r.keyword,
            r.listings,
            if test_set.contains(&i) {
                "test"
            } else {
                "train"
            },
            fmt_opt(r.label, 1),
            scored[i].score,
            band(scored[i].score),
            top.join(", ")
        ));
    }
    std::fs::write(staging.join("report.md"), md)?;
    if dir.exists() {
        std::fs::remove_dir(&dir)
            .with_context(|| format!("cannot replace empty folder {}", dir.display()))?;
    }
    std::fs::rename(&staging, &dir)
        .with_context(|| format!("cannot move the artifact into {}", dir.display()))?;
    println!(
        "{version}: held-out Spearman {} (n = {}), 5-fold out-of-fold Spearman {} (n = {}); composite fallback held-out {}",
        fmt_opt(held_out.spearman, 3),
        held_out.n,
        fmt_opt(cv.spearman, 3),
        cv.n,
        fmt_opt(held_out_composite.spearman, 3)
    );
    for (name, e) in [("held-out", &held_out), ("5-fold", &cv)] {
        let bands: Vec<String> = e
            .bands
            .iter()
            .map(|b| format!("{} {} (n={})", b.band, fmt_opt(b.mean_label, 1), b.count))
            .collect();
        println!("  {name} mean discount % per band: {}", bands.join(", "));
    }
    println!("{} ({:.1}s)", dir.display(), t.elapsed().as_secs_f64());
    if a.publish {
        let url = kwi_store::url_or_embedded(a.database_url.as_deref(), &a.data_dir);
        crate::cli::publish_artifact(&url, &dir, true).await?;
    }
    Ok(())
}

/// `kwi-train insights`.
pub async fn cmd_insights(a: InsightsArgs) -> anyhow::Result<()> {
    let horizon =
        kwi_features::Horizon::new(a.horizon).map_err(|e| anyhow::anyhow!("--horizon: {e}"))?;
    let t = Instant::now();
    let url = kwi_store::url_or_embedded(a.database_url.as_deref(), &a.data_dir);
    let store = kwi_store::open(&url).await?;
    let predictor = Arc::new(kwi_predict::registry::load_active_model(store.as_ref()).await?);
    let scorer = CompetitionScorer::active(store.as_ref()).await?;
    eprintln!(
        "forecaster {}, competition model {}",
        predictor.manifest.version, scorer.version
    );
    let pb = bar(0, "forecasting keywords");
    let p = pb.clone();
    let progress: Arc<dyn Fn(usize, usize) + Send + Sync> =
        Arc::new(move |done: usize, total: usize| {
            p.set_length(total as u64);
            p.set_position(done as u64);
        });
    let summary = insights::run(store.as_ref(), predictor, scorer, horizon, progress).await?;
    pb.finish_and_clear();
    println!("{summary} ({:.1}s)", t.elapsed().as_secs_f64());
    Ok(())
}
