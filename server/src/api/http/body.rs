//! Reading requests: JSON bodies, query strings and durations, each failure an INVALID_ARGUMENT
//! that names the field.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::de::DeserializeOwned;
use tenure::duration;
use tenure_proto::v1::Consistency;

use super::HttpError;

/// Largest JSON body read: room for the largest fields the API accepts (a 64 KiB KV value is
/// sent as the raw body, not as JSON).
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// Decodes a JSON body into `T` (whose fields are checked by name: unknown ones are refused).
/// The content type is not checked, so `curl -d '{...}'` works as sent.
pub fn json<T: DeserializeOwned>(body: &Bytes) -> Result<T, HttpError> {
    if body.len() > MAX_JSON_BYTES {
        return Err(HttpError::invalid(
            "body",
            format!("the body is {} bytes; the limit is {MAX_JSON_BYTES}", body.len()),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(HttpError::invalid("body", "the body is empty; send a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_string() } else { path };
        HttpError::invalid(&field, format!("{field}: {}", e.inner()))
    })
}

impl From<BytesRejection> for HttpError {
    /// A body that could not be read (too large, cut off): INVALID_ARGUMENT on `body`, 400 as
    /// every INVALID_ARGUMENT.
    fn from(e: BytesRejection) -> Self {
        HttpError::invalid("body", format!("body: {}", e.body_text()))
    }
}

/// A duration given either as text (`"ttl": "30s"`) or as milliseconds (`"ttl_ms": 30000`).
pub fn duration_ms(
    text_field: &str,
    text: Option<&str>,
    ms_field: &str,
    ms: Option<u64>,
) -> Result<Option<u64>, HttpError> {
    match (text, ms) {
        (Some(_), Some(_)) => Err(HttpError::invalid(text_field, format!("give {text_field} or {ms_field}, not both"))),
        (Some(t), None) => match duration::parse(t) {
            Ok(d) => u64::try_from(d.as_millis())
                .map(Some)
                .map_err(|_| HttpError::invalid(text_field, format!("{text_field}: {t:?} is too large a duration"))),
            Err(e) => Err(HttpError::invalid(text_field, format!("{text_field}: {e}"))),
        },
        (None, ms) => Ok(ms),
    }
}

/// A query string's parameters, each read once by name; any left unread is refused.
pub struct Query {
    params: BTreeMap<String, String>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Self, HttpError> {
        let mut params = BTreeMap::new();
        for (k, v) in form_pairs(raw.unwrap_or(""))? {
            if params.insert(k.clone(), v).is_some() {
                return Err(HttpError::invalid(&k, format!("query parameter {k} is given twice")));
            }
        }
        Ok(Self { params })
    }

    pub fn text(&mut self, name: &str) -> Option<String> {
        self.params.remove(name)
    }

    pub fn number<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, HttpError> {
        match self.params.remove(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| HttpError::invalid(name, format!("{name}: {v:?} is not a whole number in range"))),
        }
    }

    /// `consistency=linearizable` (the default) or `stale`.
    pub fn consistency(&mut self) -> Result<i32, HttpError> {
        consistency(self.params.remove("consistency").as_deref())
    }

    /// Refuses any parameter not read, so a misspelt one is not silently ignored.
    pub fn finish(self) -> Result<(), HttpError> {
        match self.params.keys().next() {
            None => Ok(()),
            Some(k) => Err(HttpError::invalid(k, format!("unknown query parameter {k:?}"))),
        }
    }
}

/// `linearizable` (or absent) or `stale`, in any case.
pub fn consistency(value: Option<&str>) -> Result<i32, HttpError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("linearizable") => Ok(Consistency::Linearizable as i32),
        Some("stale") => Ok(Consistency::Stale as i32),
        Some(other) => {
            Err(HttpError::invalid("consistency", format!("consistency must be linearizable or stale, got {other:?}")))
        }
    }
}

/// `application/x-www-form-urlencoded` pairs, percent-decoded; not UTF-8 is refused.
fn form_pairs(raw: &str) -> Result<Vec<(String, String)>, HttpError> {
    let mut out = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let k = percent_decode(k).map_err(|e| HttpError::invalid("query", format!("query parameter name: {e}")))?;
        let v = percent_decode(v).map_err(|e| HttpError::invalid(&k, format!("{k}: {e}")))?;
        out.push((k, v));
    }
    Ok(out)
}

/// Decodes `%XX` escapes and `+` (a space in a query string) into UTF-8 text.
pub fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                // Two hex digits exactly: `from_str_radix` alone would take `%+f`.
                let hex = b.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
                let byte = hex.and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(byte) = byte else { return Err(format!("{s:?} has a malformed %-escape")) };
                out.push(byte);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        name: String,
        ttl_ms: Option<u64>,
    }

    #[test]
    fn a_bad_field_is_named() {
        let e = json::<Probe>(&Bytes::from_static(br#"{"name":"a","ttl_ms":-5}"#)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("ttl_ms"), "{e:?}");
        let e = json::<Probe>(&Bytes::from_static(br#"{"name":"a","ttl":"5s"}"#)).unwrap_err();
        assert!(e.message.contains("unknown field `ttl`"), "{e:?}");
        let e = json::<Probe>(&Bytes::from_static(b"")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body"));
        let e = json::<Probe>(&Bytes::from_static(b"{\"name\": \"\xff\"}")).unwrap_err();
        assert_eq!(e.code, "INVALID_ARGUMENT", "{e:?}");
    }

    #[test]
    fn durations_come_as_text_or_milliseconds_but_not_both() {
        assert_eq!(duration_ms("ttl", Some("1m30s"), "ttl_ms", None).unwrap(), Some(90_000));
        assert_eq!(duration_ms("ttl", None, "ttl_ms", Some(5)).unwrap(), Some(5));
        assert_eq!(duration_ms("ttl", None, "ttl_ms", None).unwrap(), None);
        assert!(duration_ms("ttl", Some("5"), "ttl_ms", None).unwrap_err().message.contains("no unit"));
        assert!(duration_ms("ttl", Some("5s"), "ttl_ms", Some(5)).unwrap_err().message.contains("not both"));
    }

    #[test]
    fn query_parameters_are_decoded_and_unknown_ones_refused() {
        let mut q = Query::parse(Some("prefix=a%2Fb+c&page_size=10&consistency=STALE")).unwrap();
        assert_eq!(q.text("prefix").as_deref(), Some("a/b c"));
        assert_eq!(q.number::<u32>("page_size").unwrap(), Some(10));
        assert_eq!(q.consistency().unwrap(), Consistency::Stale as i32);
        q.finish().unwrap();
        let mut q = Query::parse(Some("page_size=-1")).unwrap();
        assert_eq!(q.number::<u32>("page_size").unwrap_err().field.as_deref(), Some("page_size"));
        let q = Query::parse(Some("prefx=a")).unwrap();
        assert_eq!(q.finish().unwrap_err().field.as_deref(), Some("prefx"));
        assert!(Query::parse(Some("a=%ff")).is_err());
        assert!(Query::parse(Some("a=%+f")).is_err());
        assert!(Query::parse(Some("a=1&a=2")).is_err());
    }
}
