//! Writing frames for notebooks and other tools: Arrow IPC (Feather v2) and Parquet.
//!
//! Both keep the column types of the versioned schemas ([`crate::schema`]), so a notebook reads the
//! same `Float32` features and `Date` periods the models see.

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use crate::error::{FeatureError, Result};

fn create(path: &Path) -> Result<File> {
    File::create(path).map_err(|e| FeatureError::Read {
        path: path.to_path_buf(),
        reason: format!("cannot create: {e}"),
    })
}

/// Writes `df` as an Arrow IPC file (`.arrow`/`.feather`; read with `pyarrow.feather` or
/// `polars.read_ipc`).
pub fn write_ipc(df: &mut DataFrame, path: &Path) -> Result<()> {
    IpcWriter::new(create(path)?).finish(df)?;
    Ok(())
}

/// Writes `df` as a Parquet file (zstd-compressed; read with `pandas.read_parquet`).
pub fn write_parquet(df: &mut DataFrame, path: &Path) -> Result<()> {
    ParquetWriter::new(create(path)?).finish(df)?;
    Ok(())
}

/// Reads a Parquet file written by [`write_parquet`].
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file = File::open(path).map_err(|e| FeatureError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(ParquetReader::new(file).finish()?)
}

/// Reads an Arrow IPC file written by [`write_ipc`].
pub fn read_ipc(path: &Path) -> Result<DataFrame> {
    let file = File::open(path).map_err(|e| FeatureError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(IpcReader::new(file).finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demand::{DemandConfig, demand_features};
    use crate::frame::observations_frame;
    use crate::ingest::{IngestOptions, read_observations};
    use crate::keyword::Frequency;
    use crate::regular::regular_frame;

    #[test]
    fn ipc_and_parquet_round_trip_demand_features() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../data/samples/gtrends_pt_weekly_topics.csv"
        );
        let rows = read_observations(path.as_ref(), &IngestOptions::default())
            .unwrap()
            .rows;
        let regular =
            regular_frame(&observations_frame(&rows).unwrap(), Frequency::Weekly).unwrap();
        let mut df = demand_features(regular, &DemandConfig::weekly())
            .unwrap()
            .collect()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ipc = dir.path().join("demand.arrow");
        let pq = dir.path().join("demand.parquet");
        write_ipc(&mut df, &ipc).unwrap();
        write_parquet(&mut df, &pq).unwrap();
        for back in [read_ipc(&ipc).unwrap(), read_parquet(&pq).unwrap()] {
            assert_eq!(back.schema(), df.schema());
            assert!(back.equals_missing(&df));
        }
    }
}
