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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_sensitive() {
        assert_eq!(schema_hash(""), "cbf29ce484222325");
        assert_eq!(schema_hash("a"), "af63dc4c8601ec8c");
        assert_ne!(window_schema_hash(), schema_hash("kwi.windows.v2"));
    }
}
