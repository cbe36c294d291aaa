//! Reading nested JSON by path without allocating: `serde_json::Value::pointer` builds a new
//! `String` for every path segment (to undo RFC 6901 escapes), and the signalling path reads a
//! dozen nested fields per message. Our paths are literals without `~` escapes.

use serde_json::Value;

/// The value at `path` (`"/data/sdpInfo/sdp"`: object keys, or array indexes, separated by `/`),
/// as [`Value::pointer`] finds it for paths without `~` escapes.
pub fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let rest = path.strip_prefix('/')?;
    rest.split('/').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(list) => key.parse::<usize>().ok().and_then(|i| list.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_what_pointer_finds() {
        let v = json!({"data": {"sdpInfo": {"sdp": "v=0"}, "list": [{"a": 1}], "n": null}});
        for path in ["/data/sdpInfo/sdp", "/data/list/0/a", "/data/n", "/data/missing", "/data/sdpInfo/sdp/x", "/x"] {
            assert_eq!(at(&v, path), v.pointer(path), "{path}");
        }
        assert_eq!(at(&v, "no-slash"), None);
    }
}
