//! Request parameters: the URL query and a form body, decoded the way the POP gateway does
//! (`%XX` as UTF-8, `+` as space, empty values kept).

use percent_encoding::percent_decode;

/// Where a parameter came from; the signature diagnosis tries the sources one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Query,
    Body,
}

#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String, Source)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    InvalidUtf8(String),
    Duplicate(String),
}

impl Params {
    /// Decodes `a=1&b=2` pairs from `raw` and appends them.
    pub fn extend_from(&mut self, raw: &[u8], source: Source) -> Result<(), ParamError> {
        for piece in raw.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match piece.iter().position(|b| *b == b'=') {
                Some(i) => (&piece[..i], &piece[i + 1..]),
                None => (piece, &[][..]),
            };
            let key = decode(k)?;
            let value = decode(v).map_err(|_| ParamError::InvalidUtf8(key.clone()))?;
            if self.get(&key).is_some() {
                return Err(ParamError::Duplicate(key));
            }
            self.pairs.push((key, value, source));
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _, _)| k == name).map(|(_, v, _)| v.as_str())
    }

    /// A parameter that is present and not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v, _)| (k.as_str(), v.as_str()))
    }

    pub fn from_source(&self, source: Source) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().filter(move |(_, _, s)| *s == source).map(|(k, v, _)| (k.as_str(), v.as_str()))
    }

    pub fn has_body_params(&self) -> bool {
        self.pairs.iter().any(|(_, _, s)| *s == Source::Body)
    }
}

fn decode(raw: &[u8]) -> Result<String, ParamError> {
    let plus_as_space: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    percent_decode(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ParamError::InvalidUtf8(String::from_utf8_lossy(raw).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_and_body() {
        let mut p = Params::default();
        p.extend_from(b"Title=a%20b%2Ac~d%2Be&SignatureType=&Flag", Source::Query).unwrap();
        p.extend_from(b"Desc=x+y", Source::Body).unwrap();
        assert_eq!(p.get("Title"), Some("a b*c~d+e"));
        assert_eq!(p.get("SignatureType"), Some(""));
        assert_eq!(p.get("Flag"), Some(""));
        assert_eq!(p.get("Desc"), Some("x y"));
        assert_eq!(p.non_empty("SignatureType"), None);
        assert!(p.has_body_params());
        assert_eq!(p.from_source(Source::Query).count(), 3);
    }

    #[test]
    fn rejects_bad_input() {
        let mut p = Params::default();
        assert_eq!(p.extend_from(b"DeviceId=%FF%FE", Source::Query), Err(ParamError::InvalidUtf8("DeviceId".into())));
        let mut p = Params::default();
        assert_eq!(p.extend_from(b"a=1&a=2", Source::Query), Err(ParamError::Duplicate("a".into())));
        let mut p = Params::default();
        p.extend_from(b"a=1", Source::Query).unwrap();
        assert_eq!(p.extend_from(b"a=1", Source::Body), Err(ParamError::Duplicate("a".into())));
    }
}
