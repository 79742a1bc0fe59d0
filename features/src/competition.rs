//! Competition features per (platform, keyword, period) from listing-level search results, and
//! parsers for the reference marketplace files.
//!
//! ## Listing layout ([`LISTING_COLUMNS`])
//! One row per listing returned by a search: `platform`, `keyword`, `period_start` (Date), `rank`
//! (UInt32, 1 = first result), `seller` (String, null if unknown), `price`, `review_count`, `rating`
//! (Float64, null if unknown), `sponsored` (Boolean, null if unknown), `cpc` (Float64, null if
//! unknown).
//!
//! ## Features ([`competition_features`]), one row per (platform, keyword, period_start)
//! | column | meaning |
//! | --- | --- |
//! | `listing_count` | listings returned |
//! | `listings_per_demand` | `listing_count / search_volume` of the same period (null without a volume or when it is 0) |
//! | `top10_review_share` | reviews of the 10 best-ranked listings / reviews of all (null when no reviews) |
//! | `review_hhi` | Herfindahl index of review counts over all listings: Σ (r_i / Σ r)² (1 = one listing holds every review) |
//! | `top10_review_median`, `top10_rating_mean` | median review count and mean rating of the 10 best-ranked listings |
//! | `price_median`, `price_p25`, `price_p75`, `price_iqr` | price quantiles (linear interpolation) and p75 − p25 |
//! | `price_cv` | sample std / mean of prices |
//! | `seller_count`, `seller_hhi`, `top_seller_share` | distinct sellers, Herfindahl index of listings per seller, share of the biggest seller (null without seller data) |
//! | `sponsored_share` | share of sponsored listings among those where it is known |
//! | `cpc_mean` | mean cost per click where present |
//!
//! ## Parsers
//! - [`read_etsy_listings`]: `etsy/etsy_items_price.csv` (`listing, cost, store, review, crowd`):
//!   one search theme, so platform `etsy` and the keyword are given by the caller ("tarot"); the file
//!   order is the search rank; `store` is the seller, `crowd` the review count, `review` the rating.
//! - [`read_amazon_listings`]: `amazon_in_kaggle/amazon.csv`: the keyword of a product is the last
//!   segment of its `category` path with CamelCase split and `&` spaced (`USBCables` → "usb cables",
//!   `Cables&Accessories` → "cables & accessories"), normalised by [`Keyword::parse`]; the price is
//!   `discounted_price` (INR strings such as `₹1,099`); `rating_count` (`24,269`) is the review
//!   count; the rank is the `sr=1-N` parameter of `product_link`; no seller column exists (null). A
//!   product listed twice under one keyword is kept once (first row), counted in `duplicates`.
//!
//! Neither file carries a search date, so the caller gives `period_start`. Malformed cells never
//! stop a parse: a row whose rank or keyword cannot be read is **skipped**, a malformed optional
//! number (price, rating, review count) becomes **null**; both are reported in
//! [`Listings::errors`] as `file:line: column: reason`. Empty cells are missing values, not errors.

use std::collections::HashSet;
use std::path::Path;

use chrono::NaiveDate;
use polars::prelude::*;

use crate::error::{FeatureError, Result};
use crate::frame::{
    KEYWORD, PERIOD_START, PLATFORM, SEARCH_VOLUME, date_to_days, is_date, is_numeric, is_string,
    require,
};
use crate::ingest::{RowError, read_frame};
use crate::keyword::{Keyword, Platform};
use crate::schema::{
    COMPETITION_SCHEMA_NAME, COMPETITION_SCHEMA_VERSION, FeatureSchema, from_polars,
};

/// Search rank (UInt32, 1 = first).
pub const RANK: &str = "rank";
/// Seller or shop (String).
pub const SELLER: &str = "seller";
/// Listing price in the marketplace currency (Float64).
pub const PRICE: &str = "price";
/// Number of reviews (Float64).
pub const REVIEW_COUNT: &str = "review_count";
/// Mean rating 0..=5 (Float64).
pub const RATING: &str = "rating";
/// Whether the listing is an ad (Boolean).
pub const SPONSORED: &str = "sponsored";
/// Cost per click (Float64).
pub const CPC: &str = "cpc";

/// Columns of the listing layout, in order.
pub const LISTING_COLUMNS: [&str; 10] = [
    PLATFORM,
    KEYWORD,
    PERIOD_START,
    RANK,
    SELLER,
    PRICE,
    REVIEW_COUNT,
    RATING,
    SPONSORED,
    CPC,
];

/// Parsed listings and what was wrong with the file.
#[derive(Debug)]
pub struct Listings {
    /// The listing frame ([`LISTING_COLUMNS`]).
    pub frame: DataFrame,
    /// Data rows read from the file.
    pub rows_read: usize,
    /// Rows skipped (unreadable rank or keyword); each also has an entry in `errors`.
    pub skipped: usize,
    /// Products listed again under the same keyword (dropped, first row kept).
    pub duplicates: usize,
    /// Every malformed cell, `file:line: column: reason`.
    pub errors: Vec<RowError>,
}

/// One listing of a search result before it becomes a frame row (the file parsers' and the
/// collectors' common form).
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The keyword searched (normalised).
    pub keyword: String,
    /// Search rank, 1 = first.
    pub rank: u32,
    /// Seller or shop.
    pub seller: Option<String>,
    /// Price in the marketplace currency.
    pub price: Option<f64>,
    /// Number of reviews.
    pub review_count: Option<f64>,
    /// Mean rating 0..=5.
    pub rating: Option<f64>,
}

/// The listing frame ([`LISTING_COLUMNS`]) of `rows`, all of one platform and period.
pub fn listing_frame(platform: Platform, period: NaiveDate, rows: &[Listing]) -> Result<DataFrame> {
    let n = rows.len();
    let day = date_to_days(period);
    Ok(DataFrame::new_infer_height(vec![
        Column::new(PLATFORM.into(), vec![platform.as_str(); n]),
        Column::new(
            KEYWORD.into(),
            rows.iter().map(|r| r.keyword.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(PERIOD_START.into(), vec![day; n]).cast(&DataType::Date)?,
        Column::new(RANK.into(), rows.iter().map(|r| r.rank).collect::<Vec<_>>()),
        Column::new(
            SELLER.into(),
            rows.iter().map(|r| r.seller.as_deref()).collect::<Vec<_>>(),
        ),
        Column::new(
            PRICE.into(),
            rows.iter().map(|r| r.price).collect::<Vec<_>>(),
        ),
        Column::new(
            REVIEW_COUNT.into(),
            rows.iter().map(|r| r.review_count).collect::<Vec<_>>(),
        ),
        Column::new(
            RATING.into(),
            rows.iter().map(|r| r.rating).collect::<Vec<_>>(),
        ),
        Column::new(SPONSORED.into(), vec![None::<bool>; n]),
        Column::new(CPC.into(), vec![None::<f64>; n]),
    ])?)
}

/// Parses a marketplace number: currency signs (`₹`, `$`, `€`, `£`), thousands separators and
/// spaces are dropped (`₹1,099` → 1099, `24,269` → 24269). Empty → `Ok(None)`; negative or not a
/// number → `Err`.
pub fn parse_number(cell: &str) -> std::result::Result<Option<f64>, String> {
    let cleaned: String = cell
        .trim()
        .chars()
        .filter(|c| !matches!(c, '₹' | '$' | '€' | '£' | ',' | ' ' | '\u{a0}'))
        .collect();
    if cleaned.is_empty() {
        return Ok(None);
    }
    match cleaned.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        Ok(v) => Err(format!("{v} is negative or not finite")),
        Err(_) => Err(format!("`{}` is not a number", cell.trim())),
    }
}

/// Splits a category segment into words: `USBCables` → `USB Cables`, `Cables&Accessories` →
/// `Cables & Accessories`.
pub fn category_words(segment: &str) -> String {
    let chars: Vec<char> = segment.chars().collect();
    let mut out = String::with_capacity(segment.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if c == '&' {
            out.push_str(" & ");
            continue;
        }
        if i > 0 && c.is_uppercase() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || (prev.is_uppercase() && next_lower) {
                out.push(' ');
            }
        }
        out.push(c);
    }
    out
}

struct Reader<'a> {
    file: String,
    df: &'a DataFrame,
    errors: Vec<RowError>,
}

impl<'a> Reader<'a> {
    fn col(&self, name: &str) -> Result<&'a StringChunked> {
        let df: &'a DataFrame = self.df;
        df.column(name)
            .and_then(|c| c.str())
            .map_err(|_| FeatureError::Layout {
                path: self.file.clone().into(),
                reason: format!("missing column `{name}`"),
            })
    }

    fn err(&mut self, row: usize, column: &str, reason: impl Into<String>) {
        self.errors.push(RowError {
            file: self.file.clone(),
            line: row + 2,
            column: column.to_string(),
            reason: reason.into(),
        });
    }

    fn number(&mut self, row: usize, column: &str, cell: Option<&str>) -> Option<f64> {
        match parse_number(cell.unwrap_or("")) {
            Ok(v) => v,
            Err(e) => {
                self.err(row, column, e);
                None
            }
        }
    }
}

/// Reads the Etsy listing file (see the module docs); every listing gets `keyword` and `period`.
pub fn read_etsy_listings(path: &Path, keyword: &Keyword, period: NaiveDate) -> Result<Listings> {
    let (df, _) = read_frame(path)?;
    let mut r = Reader {
        file: path.display().to_string(),
        df: &df,
        errors: Vec::new(),
    };
    let (cost, store, review, crowd) = (
        r.col("cost")?,
        r.col("store")?,
        r.col("review")?,
        r.col("crowd")?,
    );
    let mut rows = Vec::with_capacity(df.height());
    for row in 0..df.height() {
        let price = r.number(row, "cost", cost.get(row));
        let rating = r.number(row, "review", review.get(row));
        let rating = match rating {
            Some(v) if v > 5.0 => {
                r.err(row, "review", format!("{v} is outside 0..=5"));
                None
            }
            v => v,
        };
        rows.push(Listing {
            keyword: keyword.as_str().to_string(),
            rank: (row + 1) as u32,
            seller: store
                .get(row)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            price,
            review_count: r.number(row, "crowd", crowd.get(row)),
            rating,
        });
    }
    Ok(Listings {
        frame: listing_frame(Platform::Etsy, period, &rows)?,
        rows_read: df.height(),
        skipped: 0,
        duplicates: 0,
        errors: r.errors,
    })
}

/// The search rank `N` in a product link's `sr=P-N` parameter.
fn link_rank(link: &str) -> Option<u32> {
    let i = link.find("sr=")?;
    let v = &link[i + 3..];
    let v = v.split('&').next()?;
    v.rsplit('-').next()?.parse().ok()
}

/// Reads the Amazon.in product file (see the module docs); every listing gets `period`.
pub fn read_amazon_listings(path: &Path, period: NaiveDate) -> Result<Listings> {
    let (df, _) = read_frame(path)?;
    let mut r = Reader {
        file: path.display().to_string(),
        df: &df,
        errors: Vec::new(),
    };
    let (id, category, price, rating, count, link) = (
        r.col("product_id")?,
        r.col("category")?,
        r.col("discounted_price")?,
        r.col("rating")?,
        r.col("rating_count")?,
        r.col("product_link")?,
    );
    let mut rows = Vec::with_capacity(df.height());
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let (mut skipped, mut duplicates) = (0, 0);
    for row in 0..df.height() {
        let segment = category
            .get(row)
            .unwrap_or("")
            .rsplit('|')
            .next()
            .unwrap_or("");
        let keyword = match Keyword::parse(&category_words(segment)) {
            Ok(k) => k,
            Err(e) => {
                r.err(
                    row,
                    "category",
                    format!("no keyword in the category path: {e}"),
                );
                skipped += 1;
                continue;
            }
        };
        let Some(rank) = link_rank(link.get(row).unwrap_or("")) else {
            r.err(row, "product_link", "no `sr=P-N` search rank in the link");
            skipped += 1;
            continue;
        };
        let product = id.get(row).unwrap_or("").trim().to_string();
        if !seen.insert((keyword.as_str().to_string(), product)) {
            duplicates += 1;
            continue;
        }
        let rating = match r.number(row, "rating", rating.get(row)) {
            Some(v) if v > 5.0 => {
                r.err(row, "rating", format!("{v} is outside 0..=5"));
                None
            }
            v => v,
        };
        rows.push(Listing {
            keyword: keyword.as_str().to_string(),
            rank,
            seller: None,
            price: r.number(row, "discounted_price", price.get(row)),
            review_count: r.number(row, "rating_count", count.get(row)),
            rating,
        });
    }
    Ok(Listings {
        frame: listing_frame(Platform::Amazon, period, &rows)?,
        rows_read: df.height(),
        skipped,
        duplicates,
        errors: r.errors,
    })
}

/// Checks a listing frame: every [`LISTING_COLUMNS`] column with its type; negative prices,
/// review counts or CPCs and ratings outside 0..=5 are rejected naming the column.
pub fn check_listings(df: &DataFrame) -> Result<()> {
    let s = df.schema();
    require(s, PLATFORM, is_string, "String")?;
    require(s, KEYWORD, is_string, "String")?;
    require(s, PERIOD_START, is_date, "Date")?;
    require(s, RANK, |d| d.is_integer(), "an integer")?;
    require(s, SELLER, is_string, "String")?;
    for c in [PRICE, REVIEW_COUNT, RATING, CPC] {
        require(s, c, is_numeric, "a number")?;
        crate::frame::check_non_negative(df, c)?;
    }
    require(s, SPONSORED, |d| matches!(d, DataType::Boolean), "Boolean")?;
    let ratings = df.column(RATING)?.cast(&DataType::Float64)?;
    if let Some(row) = ratings
        .f64()?
        .iter()
        .position(|v| v.is_some_and(|v| v > 5.0))
    {
        return Err(FeatureError::Column {
            column: RATING.into(),
            reason: format!("row {row} is above 5"),
        });
    }
    Ok(())
}

/// Competition features per (platform, keyword, period_start), sorted by those keys (see the
/// module docs). `demand`, if given, holds `platform, keyword, period_start, search_volume` (e.g.
/// an observation frame) for `listings_per_demand`.
pub fn competition_features(listings: &DataFrame, demand: Option<&DataFrame>) -> Result<LazyFrame> {
    check_listings(listings)?;
    let keys = || [col(PLATFORM), col(KEYWORD), col(PERIOD_START)];
    // Stable: listings with the same rank keep file order, so "top 10" is deterministic.
    let by_rank = |e: Expr| {
        e.sort_by(
            [col(RANK)],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .head(Some(10))
    };
    let rev = || col(REVIEW_COUNT);
    let null_f = || lit(NULL).cast(DataType::Float64);
    let main = listings
        .clone()
        .lazy()
        .group_by(keys())
        .agg([
            len().cast(DataType::UInt32).alias("listing_count"),
            by_rank(rev()).sum().alias("_top10_reviews"),
            rev().sum().alias("_reviews"),
            ((rev() / rev().sum()) * (rev() / rev().sum()))
                .sum()
                .alias("_hhi"),
            by_rank(rev()).median().alias("top10_review_median"),
            by_rank(col(RATING)).mean().alias("top10_rating_mean"),
            col(PRICE).median().alias("price_median"),
            col(PRICE)
                .quantile(lit(0.25), QuantileMethod::Linear)
                .alias("price_p25"),
            col(PRICE)
                .quantile(lit(0.75), QuantileMethod::Linear)
                .alias("price_p75"),
            (col(PRICE).std(1) / col(PRICE).mean()).alias("price_cv"),
            col(SPONSORED)
                .cast(DataType::Float64)
                .mean()
                .alias("sponsored_share"),
            col(CPC).mean().alias("cpc_mean"),
        ])
        .with_columns([
            when(col("_reviews").gt(lit(0.0)))
                .then(col("_top10_reviews") / col("_reviews"))
                .otherwise(null_f())
                .alias("top10_review_share"),
            when(col("_reviews").gt(lit(0.0)))
                .then(col("_hhi"))
                .otherwise(null_f())
                .alias("review_hhi"),
            (col("price_p75") - col("price_p25")).alias("price_iqr"),
        ]);
    let sellers = listings
        .clone()
        .lazy()
        .filter(col(SELLER).is_not_null())
        .group_by([col(PLATFORM), col(KEYWORD), col(PERIOD_START), col(SELLER)])
        .agg([len().cast(DataType::Float64).alias("_n")])
        .group_by(keys())
        .agg([
            len().cast(DataType::UInt32).alias("seller_count"),
            ((col("_n") / col("_n").sum()) * (col("_n") / col("_n").sum()))
                .sum()
                .alias("seller_hhi"),
            (col("_n").max() / col("_n").sum()).alias("top_seller_share"),
        ]);
    let left = || JoinArgs::new(JoinType::Left);
    let mut lf = main.join(sellers, keys(), keys(), left());
    let per_demand = if let Some(d) = demand {
        let s = d.schema();
        require(s, SEARCH_VOLUME, is_numeric, "a number")?;
        require(s, PERIOD_START, is_date, "Date")?;
        crate::frame::check_non_negative(d, SEARCH_VOLUME)?;
        let volumes = d.clone().lazy().group_by(keys()).agg([col(SEARCH_VOLUME)
            .cast(DataType::Float64)
            .mean()
            .alias("_volume")]);
        lf = lf.join(volumes, keys(), keys(), left());
        when(col("_volume").gt(lit(0.0)))
            .then(col("listing_count").cast(DataType::Float64) / col("_volume"))
            .otherwise(null_f())
    } else {
        null_f()
    };
    Ok(lf
        .with_column(per_demand.alias("listings_per_demand"))
        .select(
            [PLATFORM, KEYWORD, PERIOD_START]
                .into_iter()
                .chain(COMPETITION_FEATURES)
                .map(col)
                .collect::<Vec<_>>(),
        )
        .sort(
            [PLATFORM, KEYWORD, PERIOD_START],
            SortMultipleOptions::default(),
        ))
}

/// Feature columns of [`competition_features`], in output order (after the three keys).
pub const COMPETITION_FEATURES: [&str; 16] = [
    "listing_count",
    "listings_per_demand",
    "top10_review_share",
    "review_hhi",
    "top10_review_median",
    "top10_rating_mean",
    "price_median",
    "price_p25",
    "price_p75",
    "price_iqr",
    "price_cv",
    "seller_count",
    "seller_hhi",
    "top_seller_share",
    "sponsored_share",
    "cpc_mean",
];

/// The versioned schema of [`competition_features`]' output.
pub fn competition_schema() -> Result<FeatureSchema> {
    let empty = listing_frame(Platform::Etsy, NaiveDate::default(), &[])?;
    let schema = competition_features(&empty, None)?.collect_schema()?;
    Ok(from_polars(
        COMPETITION_SCHEMA_NAME,
        COMPETITION_SCHEMA_VERSION,
        &schema,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETSY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/marketplace/etsy/etsy_items_price.csv"
    );
    const AMAZON: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/marketplace/amazon_in_kaggle/amazon.csv"
    );

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2023, 1, 1).unwrap()
    }

    fn get(df: &DataFrame, column: &str) -> Option<f64> {
        let c = df.column(column).unwrap().cast(&DataType::Float64).unwrap();
        c.f64().unwrap().get(0)
    }

    /// Expected values hand-computed from the CSV with python3 (`statistics`, `numpy.quantile`).
    fn check(df: &DataFrame, column: &str, expected: f64) {
        let got = get(df, column).unwrap_or(f64::NAN);
        assert!(
            (got - expected).abs() <= 1e-9 * expected.abs().max(1.0),
            "{column}: got {got}, expected {expected}"
        );
    }

    #[test]
    fn number_parsing() {
        assert_eq!(parse_number("₹1,099"), Ok(Some(1099.0)));
        assert_eq!(parse_number("24,269"), Ok(Some(24269.0)));
        assert_eq!(parse_number(" $19.12 "), Ok(Some(19.12)));
        assert_eq!(parse_number(""), Ok(None));
        assert!(parse_number("|").is_err());
        assert!(parse_number("-3").is_err());
        assert_eq!(
            category_words("USBCables"),
            "USBCables".replace("USBC", "USB C")
        );
        assert_eq!(category_words("Cables&Accessories"), "Cables & Accessories");
        assert_eq!(category_words("SmartWatches"), "Smart Watches");
        assert_eq!(
            link_rank("https://x/ref=sr_1_1?qid=1&s=e&sr=1-125"),
            Some(125)
        );
    }

    #[test]
    fn etsy_tarot_competition_equals_hand_computed_values() {
        let kw = Keyword::parse("tarot").unwrap();
        let l = read_etsy_listings(ETSY.as_ref(), &kw, day()).unwrap();
        assert_eq!(l.rows_read, 2336);
        assert_eq!(l.frame.height(), 2336);
        assert!(l.errors.is_empty(), "{:?}", l.errors.first());
        let demand = df![
            PLATFORM => ["etsy"],
            KEYWORD => ["tarot"],
            SEARCH_VOLUME => [4672.0],
        ]
        .unwrap()
        .lazy()
        .with_column(
            lit(date_to_days(day()))
                .cast(DataType::Date)
                .alias(PERIOD_START),
        )
        .collect()
        .unwrap();
        let f = competition_features(&l.frame, Some(&demand))
            .unwrap()
            .collect()
            .unwrap();
        assert_eq!(f.height(), 1);
        check(&f, "listing_count", 2336.0);
        check(&f, "listings_per_demand", 0.5);
        check(&f, "top10_review_share", 0.012391944837605626);
        check(&f, "review_hhi", 0.006609187879104272);
        check(&f, "top10_review_median", 421.5);
        check(&f, "top10_rating_mean", 4.94091);
        check(&f, "price_median", 19.12);
        check(&f, "price_p25", 9.0);
        check(&f, "price_p75", 36.99);
        check(&f, "price_iqr", 27.99);
        check(&f, "price_cv", 4.065713970407342);
        check(&f, "seller_count", 1329.0);
        check(&f, "seller_hhi", 0.0021891566194408587);
        check(&f, "top_seller_share", 0.023116438356164382);
        assert_eq!(get(&f, "sponsored_share"), None);
        assert_eq!(get(&f, "cpc_mean"), None);
    }

    #[test]
    fn amazon_listings_parse_inr_prices_and_ranks() {
        let l = read_amazon_listings(AMAZON.as_ref(), day()).unwrap();
        assert_eq!(l.rows_read, 1465);
        assert_eq!(l.skipped, 0);
        // The malformed rating `|` is reported with its line and becomes null; the row is kept.
        assert_eq!(l.errors.len(), 1, "{:?}", l.errors);
        assert_eq!(l.errors[0].column, "rating");
        assert!(l.errors[0].to_string().contains("`|` is not a number"));
        assert_eq!(l.frame.height() + l.duplicates, 1465);
        let f = competition_features(&l.frame, None)
            .unwrap()
            .collect()
            .unwrap();
        let usb = f
            .lazy()
            .filter(col(KEYWORD).eq(lit("usb cables")))
            .collect()
            .unwrap();
        check(&usb, "listing_count", 161.0);
        check(&usb, "top10_review_share", 0.1419265048695329);
        check(&usb, "price_median", 299.0);
        assert_eq!(get(&usb, "seller_count"), None);
        assert_eq!(get(&usb, "listings_per_demand"), None);
    }

    #[test]
    fn listing_checks_name_the_column() {
        let kw = Keyword::parse("tarot").unwrap();
        let mut df = read_etsy_listings(ETSY.as_ref(), &kw, day()).unwrap().frame;
        let mut bad = df.clone();
        bad.with_column(Column::new(PRICE.into(), vec![-1.0; bad.height()]))
            .unwrap();
        match competition_features(&bad, None) {
            Err(FeatureError::Column { column, .. }) => assert_eq!(column, PRICE),
            _ => panic!("negative price accepted"),
        }
        df = df.drop(RANK).unwrap();
        match competition_features(&df, None) {
            Err(FeatureError::Column { column, .. }) => assert_eq!(column, RANK),
            _ => panic!("missing rank accepted"),
        }
    }

    #[test]
    fn competition_schema_is_versioned() {
        let s = competition_schema().unwrap();
        assert!(s.canonical().starts_with(
            "kwi.competition.v1: platform:str, keyword:str, period_start:date, listing_count:u32"
        ));
        assert_eq!(s.columns.len(), 3 + COMPETITION_FEATURES.len());
    }
}
