//! The extractors every handler takes instead of axum's own: the same parsing, but a rejection is
//! an [`ApiError`] (the API's JSON error shape) naming the field where one can be named, never
//! axum's `text/plain` rejection (axum's `error-handling` example).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use kwi_features::params::MAX_LEVELS;
use kwi_features::{Horizon, Levels};
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};

use super::ApiError;

/// Largest request body any endpoint reads (`POST /v1/forecasts`), in bytes; a larger one is
/// refused with 413 before it is parsed.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// The query string, deserialized like axum's `Query`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
            .map(Query)
            .map_err(|e| {
                let message = e.to_string();
                ApiError::Unreadable {
                    field: named_field(&message).unwrap_or("query").to_string(),
                    message,
                }
            })
    }
}

/// The path's captures, deserialized like axum's `Path` (percent-decoded).
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e))
                if e.status().is_client_error() =>
            {
                use axum::extract::path::ErrorKind;
                let field = match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::DeserializeError { key, .. } => key.clone(),
                    _ => "path".into(),
                };
                Err(ApiError::Unreadable {
                    field,
                    message: e.body_text(),
                })
            }
            // A capture the route does not have, or a type that cannot come from a path: a bug here.
            Err(e) => Err(ApiError::Internal(e.body_text().into())),
        }
    }
}

/// A JSON body (`Content-Type: application/json` or `application/*+json`), at most
/// [`MAX_BODY_BYTES`], deserialized with the path of the field at fault kept for the error.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "expected a body with `Content-Type: application/json`".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                ApiError::PayloadTooLarge(format!("the body is larger than {MAX_BODY_BYTES} bytes"))
            }
            e if super::edge::is_body_timeout(&e) => ApiError::RequestTimeout(
                "the body stopped arriving: nothing was received within the body timeout".into(),
            ),
            e => ApiError::Unreadable {
                field: "body".into(),
                message: e.body_text(),
            },
        })?;
        // Every body this API takes is an object. serde would also read a struct from an array
        // (`[null, null]` fills its fields in order), which no client means: refused here, once
        // for every endpoint.
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {}
            Some(_) => {
                return Err(ApiError::Unreadable {
                    field: "body".into(),
                    message: "the body must be a JSON object (`{...}`)".into(),
                });
            }
            None => {
                return Err(ApiError::Unreadable {
                    field: "body".into(),
                    message: "the body is empty: expected a JSON object".into(),
                });
            }
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.to_string();
            let field = match (path.as_str(), named_field(&message)) {
                // Where a syntax error stops the parser is no field.
                _ if !inner.is_data() => "body".to_string(),
                (".", Some(name)) => name.to_string(),
                (".", None) => "body".to_string(),
                (path, Some(name)) if message.starts_with("missing field") => {
                    format!("{path}.{name}")
                }
                (path, _) => path.to_string(),
            };
            let message = if inner.is_data() {
                message
            } else {
                format!("the body is not valid JSON: {message}")
            };
            ApiError::Unreadable { field, message }
        })?;
        de.end().map_err(|e| ApiError::Unreadable {
            field: "body".into(),
            message: format!("the body is not valid JSON: {e}"),
        })?;
        Ok(Json(value))
    }
}

/// Whether the request says its body is JSON (the test axum's `Json` makes).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind == "application" && (subtype == "json" || subtype.ends_with("+json"))
}

/// An error for a field whose value does not follow its documented grammar, worded so that the
/// rejection names the field (see [`named_field`]).
pub fn invalid<E: serde::de::Error>(field: &str, why: impl std::fmt::Display) -> E {
    E::custom(format!("invalid `{field}`: {why}"))
}

/// `deserialize_with` for the batch body's `horizon`: any whole number (`9.0` and `1e1` included:
/// JSON Schema's `integer` admits them; serde's `usize` does not), then [`Horizon::new`].
pub fn body_horizon<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Horizon>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(v) if v >= 0.0 && v.fract() == 0.0 && v <= usize::MAX as f64 => {
            Horizon::new(v as usize)
                .map(Some)
                .map_err(|e| invalid("horizon", e))
        }
        Some(v) => Err(invalid(
            "horizon",
            format!("{v} is not a whole number of periods"),
        )),
    }
}

/// `deserialize_with` for an optional whole-number body field (`9.0` and `1e1` included, as JSON
/// Schema's `integer` admits them); its range is the handler's to check.
pub fn body_whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        None => Ok(None),
        Some(v) if v.fract() == 0.0 && v.abs() <= 9_007_199_254_740_992.0 => Ok(Some(v as i64)),
        Some(v) => Err(serde::de::Error::custom(format!(
            "{v} is not a whole number"
        ))),
    }
}

/// `deserialize_with` for the batch body's `levels`: numbers, then [`Levels::new`].
pub fn body_levels<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Levels>, D::Error> {
    Option::<Vec<f64>>::deserialize(d)?
        .map(Levels::new)
        .transpose()
        .map_err(|e| invalid("levels", e))
}

/// `deserialize_with` for the `horizon` query parameter: [`Horizon::parse`].
pub fn query_horizon<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Horizon>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|raw| Horizon::parse(&raw))
        .transpose()
        .map_err(|e| invalid("horizon", e))
}

/// `deserialize_with` for the `levels` query parameter: 1 to [`MAX_LEVELS`] comma-separated
/// levels, each a plain decimal in 1..=99 (`80`, `97.5`; no sign, exponent, leading zero, space or
/// empty entry): exactly the language of the `LevelList` schema's pattern, so the description
/// and the server agree on every string; then [`Levels::parse`] (sorted, distinct).
pub fn query_levels<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Levels>, D::Error> {
    let Some(raw) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let entries: Vec<&str> = raw.split(',').collect();
    if entries.len() > MAX_LEVELS {
        return Err(invalid(
            "levels",
            format!(
                "give 1 to {MAX_LEVELS} levels, e.g. 80,95; got {}",
                entries.len()
            ),
        ));
    }
    if let Some(bad) = entries.iter().find(|e| !is_level(e)) {
        return Err(invalid(
            "levels",
            format!("`{bad}` is not a level: a decimal in 1..=99 such as 80 or 97.5"),
        ));
    }
    Levels::parse(&raw)
        .map(Some)
        .map_err(|e| invalid("levels", e))
}

/// `[1-9]`, `[1-8][0-9]` or `9[0-8]` with any decimals, or `99` with zero decimals only.
fn is_level(entry: &str) -> bool {
    let (int, frac) = match entry.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (entry, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let int_ok = digits(int) && int.len() <= 2 && !int.starts_with('0');
    match frac {
        None => int_ok,
        Some(f) if int == "99" => digits(f) && f.bytes().all(|b| b == b'0'),
        Some(f) => int_ok && digits(f),
    }
}

/// The field serde's message names: `duplicate field `x``, `missing field `x``,
/// `unknown field `x`, expected ...`, or an [`invalid`] one.
fn named_field(message: &str) -> Option<&str> {
    [
        "duplicate field `",
        "missing field `",
        "unknown field `",
        "invalid `",
    ]
    .iter()
    .find_map(|prefix| message.strip_prefix(prefix))
    .and_then(|rest| rest.split('`').next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_field_reads_serde_messages() {
        fn check(message: &str, expected: Option<&str>) {
            assert_eq!(named_field(message), expected, "{message}");
        }
        check("duplicate field `horizon`", Some("horizon"));
        check(
            "missing field `platform` at line 1 column 3",
            Some("platform"),
        );
        check(
            "unknown field `x`, expected one of `keywords`, `series`",
            Some("x"),
        );
        check("invalid `levels`: `1.` is not a level", Some("levels"));
        check("invalid type: string \"a\", expected usize", None);
    }

    #[test]
    fn levels_follow_the_documented_grammar() {
        fn check(entry: &str, expected: bool) {
            assert_eq!(is_level(entry), expected, "{entry}");
        }
        for ok in [
            "1", "9", "10", "80", "98", "98.999", "1.0", "97.5", "99", "99.0", "99.000",
        ] {
            check(ok, true);
        }
        for bad in [
            "", "0", "0.5", "05", "100", "99.5", "99.01", "80.", ".5", "+80", "-1", "8e1", " 80",
            "80 ", "inf", "NaN", "١٢",
        ] {
            check(bad, false);
        }
    }

    #[test]
    fn json_media_types() {
        fn check(ct: Option<&str>, expected: bool) {
            let mut h = HeaderMap::new();
            if let Some(ct) = ct {
                h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            }
            assert_eq!(is_json(&h), expected, "{ct:?}");
        }
        check(Some("application/json"), true);
        check(Some("Application/JSON; charset=utf-8"), true);
        check(Some("application/problem+json"), true);
        check(Some("text/json"), false);
        check(Some("application/jsonx"), false);
        check(Some("text/plain"), false);
        check(None, false);
    }
}
