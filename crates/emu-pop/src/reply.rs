//! POP responses in the vendor's shapes (docs/pop-api.md#errors): JSON by default, XML when `Format=XML`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quick_xml::escape::escape;
use serde_json::{Map, Value};

pub const HOST_ID: &str = "dyvmsapi.aliyuncs.com";

/// The longest error `Message` answered whole; a longer one (a string to sign echoing a huge
/// request) is cut to a prefix marked with its original length.
pub const MAX_MESSAGE_BYTES: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    pub fn from_param(v: Option<&str>) -> Self {
        match v {
            Some(f) if f.eq_ignore_ascii_case("xml") => Format::Xml,
            _ => Format::Json,
        }
    }
}

/// An error answered before or instead of the action: a gateway error (4xx/5xx) or a business
/// error (HTTP 200, `Code` ≠ OK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl PopError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        PopError { status, code: code.into(), message: message.into() }
    }

    /// A business error: HTTP 200 with the vendor code.
    pub fn business(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::OK, code, message)
    }

    pub fn invalid_parameters(message: impl Into<String>) -> Self {
        Self::business("isv.INVALID_PARAMETERS", message)
    }

    pub fn missing(name: &str) -> Self {
        Self::invalid_parameters(format!("{name} is mandatory for this action."))
    }

    pub fn is_gateway(&self) -> bool {
        self.status != StatusCode::OK
    }
}

/// Renders a success: `{RequestId, Code:"OK", Message:"OK", <fields>}`.
pub fn success(format: Format, action: &str, request_id: &str, fields: Map<String, Value>) -> Response {
    let mut body = Map::new();
    body.insert("RequestId".into(), request_id.into());
    body.insert("Code".into(), "OK".into());
    body.insert("Message".into(), "OK".into());
    body.extend(fields);
    render(format, StatusCode::OK, &format!("{action}Response"), body)
}

/// Renders an error. Gateway errors carry HostId and Recommend like the cloud's.
pub fn error(format: Format, action: &str, request_id: &str, err: &PopError) -> Response {
    let (content_type, text) = error_document(format, action, request_id, err);
    (err.status, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], text).into_response()
}

/// An error's `Content-Type` and body.
pub fn error_document(format: Format, action: &str, request_id: &str, err: &PopError) -> (&'static str, String) {
    let mut body = Map::new();
    body.insert("RequestId".into(), request_id.into());
    if err.is_gateway() {
        body.insert("HostId".into(), HOST_ID.into());
    }
    body.insert("Code".into(), err.code.clone().into());
    body.insert("Message".into(), crate::request_log::truncated(&err.message, MAX_MESSAGE_BYTES).into());
    if err.is_gateway() {
        body.insert("Recommend".into(), format!("https://api.aliyun.com/troubleshoot?q={}", err.code).into());
    }
    let root = if err.is_gateway() { "Error".to_string() } else { format!("{action}Response") };
    document(format, &root, body)
}

fn render(format: Format, status: StatusCode, xml_root: &str, body: Map<String, Value>) -> Response {
    let (content_type, text) = document(format, xml_root, body);
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], text).into_response()
}

fn document(format: Format, xml_root: &str, body: Map<String, Value>) -> (&'static str, String) {
    match format {
        Format::Json => ("application/json;charset=utf-8", Value::Object(body).to_string()),
        Format::Xml => {
            let mut xml = String::from("<?xml version='1.0' encoding='UTF-8'?>");
            write_xml_element(&mut xml, xml_root, &Value::Object(body));
            ("text/xml;charset=utf-8", xml)
        }
    }
}

fn write_xml_element(out: &mut String, name: &str, value: &Value) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                write_xml_element(out, k, v);
            }
        }
        Value::Array(items) => {
            for v in items {
                write_xml_element(out, "item", v);
            }
        }
        Value::String(s) => out.push_str(&escape(s.as_str())),
        Value::Null => {}
        other => out.push_str(&other.to_string()),
    }
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(r: Response) -> String {
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn xml_success_and_error() {
        let mut fields = Map::new();
        fields.insert("Module".into(), "a<b".into());
        let r = success(Format::Xml, "AddRtcAccount", "RID", fields);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/xml;charset=utf-8");
        assert_eq!(
            body_of(r).await,
            "<?xml version='1.0' encoding='UTF-8'?><AddRtcAccountResponse><RequestId>RID</RequestId><Code>OK</Code><Message>OK</Message><Module>a&lt;b</Module></AddRtcAccountResponse>"
        );
        let e = PopError::new(StatusCode::NOT_FOUND, "InvalidAction.NotFound", "nope");
        let r = error(Format::Xml, "X", "RID", &e);
        assert_eq!(r.status(), 404);
        let text = body_of(r).await;
        assert!(text.contains("<Error><RequestId>RID</RequestId><HostId>"), "{text}");
    }

    #[tokio::test]
    async fn json_business_error_has_no_host_id() {
        let r = error(Format::Json, "AddRtcAccount", "RID", &PopError::missing("DeviceId"));
        assert_eq!(r.status(), 200);
        let v: Value = serde_json::from_str(&body_of(r).await).unwrap();
        assert_eq!(v["Code"], "isv.INVALID_PARAMETERS");
        assert!(v.get("HostId").is_none());
    }
}
