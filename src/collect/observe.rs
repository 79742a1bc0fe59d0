//! One observation from pages of search results, the same for every marketplace: the number of
//! competing listings the API reports, and price quartiles computed by the feature layer's
//! competition pipeline ([`kwi_features::competition::competition_features`]); and the paging
//! loop of the sources that page ([`Paging`]).

use std::collections::HashMap;
use std::future::Future;

use chrono::NaiveDate;
use kwi_features::competition::{Listing, competition_features, listing_frame};
use kwi_features::ingest::{Observation, VALUE_COUNT, value_index};
use kwi_features::{Keyword, Platform};
use kwi_store::{Job, Source};

use super::{Collected, Fetched, JobError, body_sample};

/// One result listing as the collectors read it.
#[derive(Debug, Clone, Default)]
pub struct Priced {
    /// Seller or shop.
    pub seller: Option<String>,
    /// Price and its currency (ISO 4217).
    pub price: Option<(f64, String)>,
}

/// The observation of one keyword and period: `listing_count` = `count`; `price_median`,
/// `price_p25`, `price_p75` from the listings priced in their most common currency (quantiles
/// across currencies mean nothing). Runs Polars: call it off the async runtime.
pub fn market_observation(
    platform: Platform,
    source: &str,
    keyword: &Keyword,
    period: NaiveDate,
    count: u64,
    listings: &[Priced],
) -> Result<Observation, String> {
    let mut values = [None; VALUE_COUNT];
    values[value_index("listing_count")] = Some(count as f64);
    let mut by_currency: HashMap<&str, usize> = HashMap::new();
    for (_, c) in listings.iter().filter_map(|l| l.price.as_ref()) {
        *by_currency.entry(c.as_str()).or_default() += 1;
    }
    let currency = by_currency
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(c, _)| c.to_string());
    let rows: Vec<Listing> = listings
        .iter()
        .enumerate()
        .map(|(i, l)| Listing {
            keyword: keyword.as_str().to_string(),
            rank: i as u32 + 1,
            seller: l.seller.clone(),
            price: l
                .price
                .as_ref()
                .filter(|(_, c)| Some(c) == currency.as_ref())
                .map(|(p, _)| *p),
            review_count: None,
            rating: None,
        })
        .collect();
    if !rows.is_empty() {
        let frame = listing_frame(platform, period, &rows).map_err(|e| e.to_string())?;
        let f = competition_features(&frame, None)
            .map_err(|e| e.to_string())?
            .collect()
            .map_err(|e| e.to_string())?;
        for name in ["price_median", "price_p25", "price_p75"] {
            let v = f
                .column(name)
                .and_then(|c| c.f64().map(|c| c.get(0)))
                .map_err(|e| e.to_string())?;
            values[value_index(name)] = v;
        }
    }
    Ok(Observation {
        platform,
        keyword: keyword.clone(),
        period_start: period,
        values,
        source: source.to_string(),
        line: 0,
    })
}

/// Reads a JSON body into `T`; the error says where in the body it went wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        format!("at `{path}`: {}", e.into_inner())
    })
}

/// One page read: the total count the API reports and the page's items.
pub type Page<T> = (u64, Vec<T>);

/// How a paged search source reads its answers: the total count and the page's items.
pub struct Paging<T> {
    /// Which source (for messages).
    pub source: Source,
    /// Pages read at most.
    pub pages: u32,
    /// Items per page.
    pub limit: u32,
    /// Largest offset the API accepts.
    pub max_offset: u32,
    /// Reads one 200 body: (total count, items).
    pub parse: fn(&[u8]) -> Result<Page<T>, String>,
    /// The observation of a keyword's count and items (runs Polars).
    pub observe: fn(&Keyword, NaiveDate, u64, &[T]) -> Result<Observation, String>,
}

impl<T: Send + 'static> Paging<T> {
    /// Reads pages from offset 0 (`fetch(offset)` answers 200 or fails the job) until the count,
    /// a short page or the offset cap, then builds the observation off the async runtime. A body
    /// that does not parse fails the job as invalid, with its sample and every page so far kept.
    pub async fn collect<F, Fut>(&self, job: &Job, mut fetch: F) -> Result<Collected, JobError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<Fetched, JobError>>,
    {
        let source = self.source;
        let (mut raw, mut items, mut count) = (Vec::new(), Vec::new(), 0u64);
        for page_no in 0..self.pages {
            let offset = page_no * self.limit;
            if offset > self.max_offset {
                break;
            }
            let f = fetch(offset).await?;
            raw.push(f.to_raw());
            let (n, page) = (self.parse)(&f.body).map_err(|e| JobError::Invalid {
                message: format!(
                    "{source}: page at offset {offset} for `{}` {e}",
                    job.keyword.as_str()
                ),
                sample: body_sample(&f.body, 500),
                raw: raw.clone(),
            })?;
            count = n;
            let got = page.len() as u64;
            items.extend(page);
            if got < u64::from(self.limit) || u64::from(offset + self.limit) >= count {
                break;
            }
        }
        let (keyword, period, observe) = (job.keyword.clone(), job.period, self.observe);
        let row = tokio::task::spawn_blocking(move || observe(&keyword, period, count, &items))
            .await
            .map_err(|e| JobError::Transient(format!("{source}: the feature task failed: {e}")))?
            .map_err(|e| JobError::Invalid {
                message: format!("{source}: `{}`: {e}", job.keyword.as_str()),
                sample: String::new(),
                raw: raw.clone(),
            })?;
        Ok(Collected {
            rows: vec![row],
            raw,
        })
    }

    /// The observation of kept 200 bodies of one job (`kwi collect replay`).
    pub fn reparse(&self, job: &Job, bodies: &[Vec<u8>]) -> Result<Vec<Observation>, String> {
        let (mut items, mut count) = (Vec::new(), 0);
        for b in bodies {
            let (n, page) = (self.parse)(b)?;
            count = n;
            items.extend(page);
        }
        Ok(vec![(self.observe)(
            &job.keyword,
            job.period,
            count,
            &items,
        )?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_use_the_majority_currency() {
        let kw = Keyword::parse("tarot cards").unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let l = |p: f64, c: &str| Priced {
            seller: Some("s".into()),
            price: Some((p, c.into())),
        };
        let rows = [l(10.0, "USD"), l(20.0, "USD"), l(9.0, "EUR")];
        let o = market_observation(Platform::Etsy, "etsy-api", &kw, day, 3, &rows).unwrap();
        assert_eq!(o.values[value_index("listing_count")], Some(3.0));
        assert_eq!(o.values[value_index("price_median")], Some(15.0));
        assert_eq!(o.values[value_index("price_p25")], Some(12.5));
        assert_eq!(o.values[value_index("price_p75")], Some(17.5));
        let o = market_observation(Platform::Ebay, "ebay-api", &kw, day, 0, &[]).unwrap();
        assert_eq!(o.values[value_index("listing_count")], Some(0.0));
        assert_eq!(o.values[value_index("price_median")], None);
    }
}
