//! Run reports: `report.md`, `report.json` and PNG plots of sample forecasts with their bands, in the
//! run's output folder. Plots carry no text (no font is needed or shipped): the Markdown names each
//! plot, its series and what the colours mean.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kwi_features::series::Series;
use kwi_models::Forecast;
use plotters::prelude::*;

/// Plots `history` (last `show` values, grey), actuals if known (black), the forecast mean (blue) and
/// its bands (light blue: widest level; darker: narrower) into a PNG.
pub fn plot(
    path: &Path,
    history: &[f64],
    forecast: &Forecast,
    actual: Option<&[f64]>,
    show: usize,
) -> anyhow::Result<()> {
    let hist = &history[history.len().saturating_sub(show)..];
    let n = hist.len();
    let h = forecast.mean.len();
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    let all = hist
        .iter()
        .chain(&forecast.mean)
        .chain(forecast.intervals.iter().flat_map(|i| i.lo.iter().chain(&i.hi)))
        .chain(actual.into_iter().flatten());
    for v in all {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        hi = lo.abs().max(1.0) + lo;
    }
    let pad = (hi - lo) * 0.05;
    let root = BitMapBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .build_cartesian_2d(0f64..(n + h) as f64, (lo - pad)..(hi + pad))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let shades = [RGBColor(170, 200, 240), RGBColor(110, 160, 230)];
    for (k, iv) in forecast.intervals.iter().rev().enumerate() {
        let color = shades[k.min(1)];
        let mut poly: Vec<(f64, f64)> = (0..h).map(|i| ((n + i) as f64, iv.hi[i])).collect();
        poly.extend((0..h).rev().map(|i| ((n + i) as f64, iv.lo[i])));
        chart
            .draw_series(std::iter::once(Polygon::new(poly, color.filled())))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    chart
        .draw_series(LineSeries::new(
            hist.iter().enumerate().map(|(i, v)| (i as f64, *v)),
            RGBColor(90, 90, 90).stroke_width(2),
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(a) = actual {
        chart
            .draw_series(LineSeries::new(
                a.iter().enumerate().map(|(i, v)| ((n + i) as f64, *v)),
                BLACK.stroke_width(2),
            ))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    chart
        .draw_series(LineSeries::new(
            forecast.mean.iter().enumerate().map(|(i, v)| ((n + i) as f64, *v)),
            RGBColor(20, 60, 200).stroke_width(3),
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// Writes up to `k` sample plots (evenly spread over the series) and returns their file names with
/// the series labels.
pub fn sample_plots(
    dir: &Path,
    series: &[Series],
    forecasts: &[Forecast],
    actuals: Option<&[Vec<f64>]>,
    k: usize,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let step = (series.len() / k.max(1)).max(1);
    let mut out = Vec::new();
    for i in (0..series.len()).step_by(step).take(k) {
        let name = format!("forecast_{}.png", sanitize(&series[i].label));
        let path = dir.join(&name);
        plot(
            &path,
            &series[i].values,
            &forecasts[i],
            actuals.map(|a| a[i].as_slice()),
            104,
        )
        .with_context(|| format!("cannot draw {}", path.display()))?;
        out.push((PathBuf::from(name), series[i].label.clone()));
    }
    Ok(out)
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

/// The legend that goes under the plots in `report.md`.
pub const PLOT_LEGEND: &str = "Grey: last 104 periods of history; black: held-out actuals (when \
known); blue line: forecast mean; light/dark blue bands: widest/narrowest prediction interval.";
