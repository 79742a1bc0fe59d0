//! The import parsers' fuzz targets: what must hold for ANY input bytes. Shared by the bounded
//! bolero run under `cargo test` (`features/tests/fuzz.rs`) and the cargo-fuzz targets for long
//! local runs (`fuzz/fuzz_targets/`), so both check the same properties.
//!
//! For every input: no panic; an `Err` is a message naming the file; an `Ok` holds only rows that
//! passed validation (a normalised keyword, values that are finite numbers in their columns'
//! ranges), and in the long layout every data row read is either returned or reported.

use chrono::NaiveDate;
use kwi_features::Keyword;
use kwi_features::ingest::{
    IngestOptions, InputFormat, Observation, VALUE_COLUMNS, read_observations_bytes,
};

/// The file name an input is read as, by the first byte: each extension's reader gets inputs.
const NAMES: [&str; 6] = [
    "fuzz.csv",
    "fuzz.tsv",
    "fuzz.parquet",
    "fuzz.arrow",
    "fuzz.arrows",
    "fuzz.txt",
];

/// The layout an input is read as, by the second byte (auto-detection most of the time).
const FORMATS: [InputFormat; 8] = [
    InputFormat::Auto,
    InputFormat::Auto,
    InputFormat::Auto,
    InputFormat::Long,
    InputFormat::Gtrends,
    InputFormat::M4,
    InputFormat::KeywordPlanner,
    InputFormat::BrandAnalytics,
];

/// `data[0]` picks the file type, `data[1]` the layout, the rest is the file.
pub fn import(data: &[u8]) {
    let (Some(&kind), Some(&layout)) = (data.first(), data.get(1)) else {
        return;
    };
    let name = NAMES[usize::from(kind) % NAMES.len()];
    let format = FORMATS[usize::from(layout) % FORMATS.len()];
    let opts = IngestOptions {
        format,
        // M4 files carry no dates: anchor them as `kwi import --start` would.
        start: Some(NaiveDate::from_ymd_opt(2020, 1, 5).expect("a date")),
        ..IngestOptions::default()
    };
    import_as(name, &data[2..], &opts);
}

/// Reads `bytes` as the file `name` and checks what came back.
pub fn import_as(name: &str, bytes: &[u8], opts: &IngestOptions) {
    match read_observations_bytes(name, bytes, opts) {
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty(), "an empty error for {name}");
        }
        Ok(ingested) => {
            for row in &ingested.rows {
                check_row(row);
            }
            // The long layout: each data row is one observation or at least one reported error.
            if ingested.format == Some(InputFormat::Long) {
                assert!(
                    ingested.rows.len() + ingested.errors.len() >= ingested.rows_read,
                    "{name}: {} rows read, {} returned, {} reported",
                    ingested.rows_read,
                    ingested.rows.len(),
                    ingested.errors.len()
                );
            }
        }
    }
}

fn check_row(row: &Observation) {
    // The keyword is what parsing its own text gives again (normalisation is idempotent).
    let again = Keyword::parse(row.keyword.as_str()).expect("a stored keyword parses again");
    assert_eq!(again, row.keyword);
    assert!(
        row.values.iter().any(Option::is_some),
        "a row without values: {row:?}"
    );
    for (value, column) in row.values.iter().zip(VALUE_COLUMNS) {
        let Some(v) = *value else { continue };
        assert!(
            v.is_finite() && v >= 0.0,
            "{column} = {v} accepted: {row:?}"
        );
        match column {
            "rating_mean" => assert!(v <= 5.0, "{column} = {v}"),
            "top10_review_share" | "sponsored_share" | "click_share" | "conversion_share" => {
                assert!(v <= 1.0, "{column} = {v}")
            }
            "competition_index" => assert!(v <= 100.0, "{column} = {v}"),
            "search_frequency_rank" => assert!(v >= 1.0 && v.fract() == 0.0, "{column} = {v}"),
            _ => {}
        }
    }
}

/// Keyword normalisation on any text: never a panic; a keyword is at most 200 characters, has no
/// control character, no leading, trailing or doubled space, and parses to itself.
pub fn keyword(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(k) = Keyword::parse(&text) {
        let s = k.as_str();
        assert!(s.chars().count() <= kwi_features::keyword::MAX_KEYWORD_CHARS);
        assert!(!s.chars().any(char::is_control), "{s:?}");
        assert!(
            !s.starts_with(' ') && !s.ends_with(' ') && !s.contains("  "),
            "{s:?}"
        );
        assert_eq!(Keyword::parse(s).as_ref(), Ok(&k));
    }
}

/// Real files in each layout, cut down (`seeds/README.md` says where each comes from), and the
/// format each is read as.
const SEEDS: [(&str, &[u8]); 5] = [
    ("gtrends.csv", include_bytes!("seeds/gtrends.csv")),
    ("m4.csv", include_bytes!("seeds/m4.csv")),
    ("long.csv", include_bytes!("seeds/long.csv")),
    (
        "keyword_planner.tsv",
        include_bytes!("seeds/keyword_planner.tsv"),
    ),
    (
        "brand_analytics.csv",
        include_bytes!("seeds/brand_analytics.csv"),
    ),
];

/// `seeds/long.csv` written as Parquet, an Arrow IPC file and an Arrow IPC stream (by polars,
/// once), so the binary readers get well-formed files to corrupt.
fn binary_seeds() -> &'static [(&'static str, Vec<u8>); 3] {
    use polars::prelude::*;
    static SEEDS_BIN: std::sync::OnceLock<[(&str, Vec<u8>); 3]> = std::sync::OnceLock::new();
    SEEDS_BIN.get_or_init(|| {
        let mut df = CsvReadOptions::default()
            .with_has_header(true)
            .into_reader_with_file_handle(std::io::Cursor::new(SEEDS[2].1))
            .finish()
            .expect("the long seed reads");
        let (mut parquet, mut ipc, mut stream) = (Vec::new(), Vec::new(), Vec::new());
        ParquetWriter::new(&mut parquet)
            .finish(&mut df)
            .expect("parquet written");
        IpcWriter::new(&mut ipc)
            .finish(&mut df)
            .expect("ipc written");
        IpcStreamWriter::new(&mut stream)
            .finish(&mut df)
            .expect("ipc stream written");
        [
            ("long.parquet", parquet),
            ("long.arrow", ipc),
            ("long.arrows", stream),
        ]
    })
}

/// What a mutation may insert: the separators, quotes, line ends, and the cells the parsers treat
/// specially or must refuse.
const TOKENS: [&[u8]; 24] = [
    b",",
    b"\t",
    b";",
    b"\"",
    b"\n",
    b"\r\n",
    b"-",
    b"--",
    b"<1",
    b"1,204",
    b"1K \xe2\x80\x93 10K",
    b"24.6%",
    b"1e308",
    b"NaN",
    b"-1",
    b"inf",
    b"99999999999999999999999",
    b"2021-02-30",
    b"12/31/2020",
    b"\xef\xbb\xbf",
    b"\0",
    b"\xff\xfe",
    b"  ",
    b"Searches: Feb 2006",
];

/// A real text file (`data[0]` picks it; `data[1]` the layout, as in [`import`]) with the
/// mutations the rest of `data` describes ([`mutate`]). Random bytes rarely make a CSV; a mutated
/// real file goes past the header into every cell parser.
pub fn import_mutated(data: &[u8]) {
    let (Some(&seed), Some(&layout)) = (data.first(), data.get(1)) else {
        return;
    };
    let (name, bytes) = SEEDS[usize::from(seed) % SEEDS.len()];
    read_mutated(name, mutate(bytes.to_vec(), &data[2..]), layout);
}

/// The same on the Parquet, Arrow IPC file and Arrow IPC stream forms of `seeds/long.csv`.
///
/// Not run on random inputs by default (docs/fuzzing.md, "Known"): polars' Parquet and IPC readers
/// allocate the lengths a file claims before checking them, so some corrupt files abort the process
/// (`memory allocation of … bytes failed`), which no caller can catch. Its corpus (the inputs that
/// once failed in a way the code now handles) is replayed by every `cargo test`.
pub fn import_mutated_binary(data: &[u8]) {
    let (Some(&seed), Some(&layout)) = (data.first(), data.get(1)) else {
        return;
    };
    let seeds = binary_seeds();
    let (name, bytes) = &seeds[usize::from(seed) % seeds.len()];
    read_mutated(name, mutate(bytes.clone(), &data[2..]), layout);
}

fn read_mutated(name: &str, file: Vec<u8>, layout: u8) {
    let format = FORMATS[usize::from(layout) % FORMATS.len()];
    let opts = IngestOptions {
        format,
        start: Some(NaiveDate::from_ymd_opt(2020, 1, 5).expect("a date")),
        ..IngestOptions::default()
    };
    import_as(name, &file, &opts);
}

/// Applies `ops`, four bytes each: set a byte, insert a byte, delete a byte, insert a token,
/// truncate, duplicate a line (the op byte modulo 6; then a little-endian position, taken modulo
/// the length; then a value).
fn mutate(mut file: Vec<u8>, ops: &[u8]) -> Vec<u8> {
    for op in ops.chunks_exact(4) {
        let at = usize::from(u16::from_le_bytes([op[1], op[2]]));
        let value = op[3];
        let len = file.len();
        match op[0] % 6 {
            0 if len > 0 => file[at % len] = value,
            1 => file.insert(at % (len + 1), value),
            2 if len > 0 => {
                file.remove(at % len);
            }
            3 => {
                let token = TOKENS[usize::from(value) % TOKENS.len()];
                let at = at % (len + 1);
                file.splice(at..at, token.iter().copied());
            }
            4 => file.truncate(at % (len + 1)),
            5 if len > 0 => {
                let at = at % len;
                let start = file[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let end = file[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(len, |i| at + i + 1);
                let line = file[start..end].to_vec();
                file.splice(end..end, line);
            }
            _ => {}
        }
    }
    file
}

/// Each text seed read as it is: (name, rows, errors, layout) — a seed that no longer reads would
/// leave the mutation target fuzzing error paths only.
pub fn seed_readings() -> Vec<(&'static str, usize, usize, Option<InputFormat>)> {
    let opts = IngestOptions {
        start: Some(NaiveDate::from_ymd_opt(2020, 1, 5).expect("a date")),
        ..IngestOptions::default()
    };
    SEEDS
        .iter()
        .map(|(name, bytes)| {
            let ingested = read_observations_bytes(name, bytes, &opts)
                .unwrap_or_else(|e| panic!("seed {name}: {e}"));
            (
                *name,
                ingested.rows.len(),
                ingested.errors.len(),
                ingested.format,
            )
        })
        .collect()
}
