//! Named, versioned schemas of the feature layer's outputs. A model manifest records the hash of the
//! schema it was trained on; a server refuses a model whose hash differs from the running code's.

/// Layout of model windows ([`crate::windows`]). Bump the version on any change of meaning.
pub const WINDOW_SCHEMA: &str = "kwi.windows.v1: input = lookback values before the origin, \
left-padded with the series' first value; scale = mean |input| (1 if 0); inputs and targets divided \
by scale; series regularised by kwi.series.v1 (grid from first observation, gaps linearly \
interpolated, same-period observations averaged)";

/// FNV-1a 64-bit hash, hex: stable across platforms and releases (unlike `std`'s `DefaultHasher`).
pub fn schema_hash(schema: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in schema.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Hash of [`WINDOW_SCHEMA`].
pub fn window_schema_hash() -> String {
    schema_hash(WINDOW_SCHEMA)
}

/// A named, versioned table layout: the columns a pipeline promises, in order, with their types.
///
/// Its [`FeatureSchema::hash`] goes into model manifests: a model trained on one layout is refused by
/// a server whose feature code produces another. The hash covers the name, the version and every
/// column name and type, so renaming, reordering, retyping or re-parametrising (a different lag set
/// changes the column list) all change it; a change of *meaning* with the same columns needs a
/// version bump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureSchema {
    /// Schema name, e.g. `kwi.demand`.
    pub name: String,
    /// Version; bump on any change of meaning.
    pub version: u32,
    /// `(column, type)` in output order; types as Polars prints them (`f32`, `date`, ...).
    pub columns: Vec<(String, String)>,
}

impl FeatureSchema {
    /// Canonical text: `name.vVERSION: col:type, col:type, ...`.
    pub fn canonical(&self) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|(c, t)| format!("{c}:{t}"))
            .collect();
        format!("{}.v{}: {}", self.name, self.version, cols.join(", "))
    }

    /// [`schema_hash`] of [`FeatureSchema::canonical`].
    pub fn hash(&self) -> String {
        schema_hash(&self.canonical())
    }

    /// Column names in order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|(c, _)| c.as_str()).collect()
    }
}

/// Name of the regular-series layout ([`crate::regular`]).
pub const REGULAR_SCHEMA_NAME: &str = "kwi.regular";
/// Version of the regular-series layout.
pub const REGULAR_SCHEMA_VERSION: u32 = 1;
/// Name of the demand-feature layout ([`crate::demand`]).
pub const DEMAND_SCHEMA_NAME: &str = "kwi.demand";
/// Version of the demand-feature layout.
pub const DEMAND_SCHEMA_VERSION: u32 = 1;
/// Name of the competition-feature layout ([`crate::competition`]).
pub const COMPETITION_SCHEMA_NAME: &str = "kwi.competition";
/// Version of the competition-feature layout.
pub const COMPETITION_SCHEMA_VERSION: u32 = 1;
/// Name of the tabular (Linfa) layout ([`crate::tabular`]).
pub const TABULAR_SCHEMA_NAME: &str = "kwi.tabular";
/// Version of the tabular layout.
pub const TABULAR_SCHEMA_VERSION: u32 = 1;

/// Builds a [`FeatureSchema`] from a Polars schema (the columns a pipeline actually produces).
pub fn from_polars(name: &str, version: u32, schema: &polars::prelude::Schema) -> FeatureSchema {
    FeatureSchema {
        name: name.to_string(),
        version,
        columns: schema
            .iter()
            .map(|(c, t)| (c.to_string(), t.to_string()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_sensitive() {
        assert_eq!(schema_hash(""), "cbf29ce484222325");
        assert_eq!(schema_hash("a"), "af63dc4c8601ec8c");
        assert_ne!(window_schema_hash(), schema_hash("kwi.windows.v2"));
    }

    #[test]
    fn feature_schema_hash_covers_name_version_and_columns() {
        let a = FeatureSchema {
            name: "kwi.demand".into(),
            version: 1,
            columns: vec![("lag_1".into(), "f32".into())],
        };
        assert_eq!(a.canonical(), "kwi.demand.v1: lag_1:f32");
        assert_eq!(a.hash(), schema_hash("kwi.demand.v1: lag_1:f32"));
        let mut b = a.clone();
        b.version = 2;
        assert_ne!(a.hash(), b.hash());
        let mut c = a.clone();
        c.columns[0].1 = "f64".into();
        assert_ne!(a.hash(), c.hash());
    }
}
