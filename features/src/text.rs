//! Text tables as sellers' tools write them: UTF-8 with or without a byte-order mark, UTF-16
//! (Google Ads Keyword Planner exports are UTF-16LE with a BOM), comma, tab or semicolon separated,
//! with title or report-parameter lines above the header (Keyword Planner's two title lines,
//! Brand Analytics' `Reporting Range=["Weekly"],…` line, Google Trends' `Category:` line).
//!
//! UTF-16 is decoded with the standard library's `char::decode_utf16` (no crate needed for the
//! two encodings these exports use); any other byte sequence that is not UTF-8 is refused with the
//! encoding that was seen.

use std::borrow::Cow;
use std::fmt;

/// How a text file was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 without a byte-order mark.
    Utf8,
    /// UTF-8 starting with `EF BB BF`.
    Utf8Bom,
    /// UTF-16 little-endian (with `FF FE`, or detected from zero high bytes).
    Utf16Le,
    /// UTF-16 big-endian (with `FE FF`, or detected from zero high bytes).
    Utf16Be,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf8Bom => "UTF-8 with BOM",
            Encoding::Utf16Le => "UTF-16LE",
            Encoding::Utf16Be => "UTF-16BE",
        })
    }
}

/// The encoding of a file from its first bytes: a byte-order mark, else UTF-16 when most bytes at
/// odd (LE) or even (BE) offsets of the first line are zero (ASCII text in UTF-16 without a BOM).
pub fn sniff(head: &[u8]) -> Encoding {
    match head {
        [0xEF, 0xBB, 0xBF, ..] => Encoding::Utf8Bom,
        [0xFF, 0xFE, ..] => Encoding::Utf16Le,
        [0xFE, 0xFF, ..] => Encoding::Utf16Be,
        _ => {
            let sample = &head[..head.len().min(200) & !1];
            let pairs = sample.len() / 2;
            if pairs < 2 {
                return Encoding::Utf8;
            }
            let zeros_at = |k: usize| {
                sample
                    .iter()
                    .skip(k)
                    .step_by(2)
                    .filter(|b| **b == 0)
                    .count()
            };
            if zeros_at(1) * 10 >= pairs * 9 {
                Encoding::Utf16Le
            } else if zeros_at(0) * 10 >= pairs * 9 {
                Encoding::Utf16Be
            } else {
                Encoding::Utf8
            }
        }
    }
}

/// The file's text as UTF-8 bytes (borrowed when it already is UTF-8 without a BOM), or why not.
pub fn to_utf8(bytes: &[u8]) -> Result<(Cow<'_, [u8]>, Encoding), String> {
    let enc = sniff(bytes);
    let utf16 = |body: &[u8], le: bool| -> Result<Vec<u8>, String> {
        if !body.len().is_multiple_of(2) {
            return Err(format!(
                "{enc} text with an odd number of bytes (truncated file?)"
            ));
        }
        let units = body.chunks_exact(2).map(|c| {
            if le {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        });
        let mut out = String::with_capacity(body.len() / 2);
        for (i, ch) in char::decode_utf16(units).enumerate() {
            out.push(ch.map_err(|_| format!("invalid {enc} at byte {}", 2 * i))?);
        }
        Ok(out.into_bytes())
    };
    let text = match enc {
        Encoding::Utf8 => Cow::Borrowed(bytes),
        Encoding::Utf8Bom => Cow::Borrowed(&bytes[3..]),
        Encoding::Utf16Le => {
            let body = bytes.strip_prefix(&[0xFF, 0xFE]).unwrap_or(bytes);
            Cow::Owned(utf16(body, true)?)
        }
        Encoding::Utf16Be => {
            let body = bytes.strip_prefix(&[0xFE, 0xFF]).unwrap_or(bytes);
            Cow::Owned(utf16(body, false)?)
        }
    };
    if let Err(e) = std::str::from_utf8(&text[..text.len().min(1 << 16)]) {
        // A cut inside the sampled prefix's last character is not an error.
        if e.error_len().is_some() {
            let at = e.valid_up_to();
            return Err(format!(
                "not UTF-8 or UTF-16 text (byte {at} is {:#04x}); save the file as UTF-8 CSV",
                text[at]
            ));
        }
    }
    Ok((text, enc))
}

/// What the first lines of a text table say about its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Field separator: `,`, `\t` or `;`.
    pub delimiter: u8,
    /// Lines above the header (titles, report parameters), as text.
    pub preamble: Vec<String>,
}

impl Shape {
    /// The delimiter as a word, for messages.
    pub fn delimiter_name(&self) -> &'static str {
        match self.delimiter {
            b'\t' => "tab",
            b';' => "semicolon",
            _ => "comma",
        }
    }
}

/// Separator and preamble from the first lines (at most 10 looked at). The separator is the one
/// found on the most lines, then the one that splits some line into the most fields (ties go to
/// the comma): a title line with commas above a tab-separated table does not decide. A preamble line is a leading
/// line without that separator (a title, a blank line) or a report-parameter line (`name=[…]`, as
/// Amazon's Brand Analytics downloads start); at most 10 are skipped.
pub fn shape(text: &[u8]) -> Shape {
    let head = &text[..text.len().min(64 * 1024)];
    let lines: Vec<&[u8]> = head
        .split(|b| *b == b'\n')
        .take(10)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    let score = |d: u8| {
        let counts = lines.iter().map(|l| l.iter().filter(|b| **b == d).count());
        let with = counts.clone().filter(|c| *c > 0).count();
        (with, counts.max().unwrap_or(0))
    };
    let delimiter = [b',', b'\t', b';']
        .into_iter()
        .max_by_key(|d| (score(*d), *d == b','))
        .unwrap_or(b',');
    let is_parameters = |l: &[u8]| l.windows(2).any(|w| w == b"=[");
    let preamble = lines
        .iter()
        .take_while(|l| !l.contains(&delimiter) || is_parameters(l))
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    Shape {
        delimiter,
        preamble,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str, bom: bool) -> Vec<u8> {
        let mut v = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
        v.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
        v
    }

    #[test]
    fn encodings_are_recognised_and_decoded() {
        let text = "Keyword\tAvg. monthly searches\ncafé\t1000\n";
        for (bytes, enc) in [
            (text.as_bytes().to_vec(), Encoding::Utf8),
            (
                [&[0xEF, 0xBB, 0xBF][..], text.as_bytes()].concat(),
                Encoding::Utf8Bom,
            ),
            (utf16le(text, true), Encoding::Utf16Le),
            (utf16le(text, false), Encoding::Utf16Le),
            (
                [
                    vec![0xFE, 0xFF],
                    text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
                ]
                .concat(),
                Encoding::Utf16Be,
            ),
        ] {
            let (got, seen) = to_utf8(&bytes).unwrap();
            assert_eq!(seen, enc);
            assert_eq!(std::str::from_utf8(&got).unwrap(), text, "{enc}");
        }
        let latin1 = b"keyword,search_volume\ncaf\xe9,10\n";
        let e = to_utf8(latin1).unwrap_err();
        assert!(e.contains("not UTF-8") && e.contains("0xe9"), "{e}");
        assert!(
            to_utf8(&[0xFF, 0xFE, 0x41])
                .unwrap_err()
                .contains("odd number")
        );
    }

    #[test]
    fn delimiter_and_preamble_lines() {
        let kp = "Keyword Stats 2018-12-04 at 10_11_32\nDecember 1, 2016 - November 30, 2018\nKeyword\tCurrency\tSearches: Dec 2016\nx\tEUR\t10\n";
        let s = shape(kp.as_bytes());
        assert_eq!((s.delimiter, s.preamble.len()), (b'\t', 2));
        assert_eq!(s.delimiter_name(), "tab");
        let ba = "Reporting Range=[\"Weekly\"],Select week=[\"Week 1 | 2021-01-03 - 2021-01-09 2021\"]\r\nDepartment,Search Term,Search Frequency Rank\r\nAmazon.com,tarot cards,1\r\n";
        let s = shape(ba.as_bytes());
        assert_eq!((s.delimiter, s.preamble.len()), (b',', 1));
        assert!(s.preamble[0].contains("Week 1"));
        let gt = "Category: All categories\n\nWeek,coffee: (Portugal)\n2018-01-07,40\n";
        assert_eq!(shape(gt.as_bytes()).preamble.len(), 2);
        let plain = "keyword;period_start;search_volume\nx;2024-01-01;3\n";
        assert_eq!(shape(plain.as_bytes()).delimiter, b';');
    }
}
