//! The MNS HTTP API (docs/mns.md#operations) at the root of its origin. One fallback handler: the raw
//! request-target is what the signature covers, so routing is done here, on the raw path.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use http_body_util::{BodyExt, Limited};

use crate::auth::{self, Caller};
use crate::error::{MnsError, error_xml};
use crate::queue::{AttrsPatch, MAX_BATCH, MAX_WAIT_SECONDS, NewMessage, Property};
use crate::{Mns, valid_queue_name, xml};

/// Largest request body: 16 messages of 64 KiB plus their XML.
const MAX_BODY: usize = 2 * 1024 * 1024;

pub use emu_http::ViaTls;

/// The MNS router: every path, every method, one handler.
pub fn router(mns: Arc<Mns>) -> Router {
    Router::new().fallback(handle).with_state(mns)
}

enum Target<'a> {
    Queues,
    Queue(&'a str),
    Messages(&'a str),
    Other,
}

fn route(path: &str) -> Target<'_> {
    let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    let mut it = path.strip_prefix('/').unwrap_or(path).split('/');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some("queues"), None, _, _) => Target::Queues,
        (Some("queues"), Some(q), None, _) => Target::Queue(q),
        (Some("queues"), Some(q), Some("messages"), None) => Target::Messages(q),
        _ => Target::Other,
    }
}

/// Query parameters: names case-insensitive (Python sends `ReceiptHandle`, Node
/// `receiptHandle`), values percent-decoded but `+` kept (receipt handles go unencoded).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_ascii_lowercase(), percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn number(&self, name: &str, display: &str, lo: u32, hi: u32) -> Result<Option<u32>, MnsError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                _ => Err(MnsError::invalid_argument(format!(
                    "The value of {display} should between {lo} and {hi} (got {v:?})."
                ))),
            },
        }
    }
}

struct Reply {
    status: StatusCode,
    body: Option<String>,
    location: Option<String>,
}

impl Reply {
    fn xml(status: StatusCode, body: String) -> Self {
        Reply { status, body: Some(body), location: None }
    }

    fn empty(status: StatusCode) -> Self {
        Reply { status, body: None, location: None }
    }
}

fn request_id() -> String {
    emu_core::ids::random_hex_upper(24)
}

fn respond(status: StatusCode, body: Option<String>, request_id: &str, location: Option<&str>) -> Response {
    let mut r = Response::builder().status(status);
    let h = r.headers_mut().expect("builder");
    if body.is_some() {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml;charset=utf-8"));
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-mns-request-id", v);
    }
    h.insert("x-mns-version", HeaderValue::from_static("2015-06-06"));
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        h.insert(header::LOCATION, l);
    }
    r.body(body.map(Body::from).unwrap_or_else(Body::empty)).expect("valid response")
}

async fn handle(State(mns): State<Arc<Mns>>, req: Request) -> Response {
    let rid = request_id();
    let tls = req.extensions().get::<ViaTls>().is_some();
    let (parts, body) = req.into_parts();
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_string();
    let origin = format!("{}://{host}", if tls { "https" } else { "http" });
    let target = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_string();
    let result = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => serve(&mns, &parts.method, &parts.headers, &target, &origin, b.to_bytes()).await,
        Err(_) => Err(MnsError::invalid_argument(format!("The request body is larger than {MAX_BODY} bytes."))),
    };
    match result {
        Ok(reply) => {
            tracing::debug!(request_id = %rid, method = %parts.method, target = %target, status = reply.status.as_u16(), "MNS request");
            respond(reply.status, reply.body, &rid, reply.location.as_deref())
        }
        Err(e) => {
            if e.status.is_server_error() || e.status == StatusCode::FORBIDDEN {
                tracing::warn!(request_id = %rid, method = %parts.method, target = %target, code = e.code, "MNS request refused: {}", e.message);
            } else {
                tracing::debug!(request_id = %rid, method = %parts.method, target = %target, code = e.code, "MNS error: {}", e.message);
            }
            respond(e.status, Some(error_xml(&e, &rid, &origin)), &rid, None)
        }
    }
}

async fn serve(
    mns: &Arc<Mns>,
    method: &Method,
    headers: &HeaderMap,
    target: &str,
    origin: &str,
    body: Bytes,
) -> Result<Reply, MnsError> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let route = route(path);
    if let Target::Other = route {
        return Err(MnsError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestURL",
            format!("The request URL {path:?} is not supported: the emulator serves queues (/queues/…) only."),
        ));
    }
    let caller = auth::authenticate(mns, method.as_str(), headers, target, &body)?;
    let query = Query::parse(query);
    let name = match route {
        Target::Queue(q) | Target::Messages(q) => {
            let q = percent_encoding::percent_decode_str(q).decode_utf8_lossy().into_owned();
            if !valid_queue_name(&q) {
                return Err(MnsError::invalid_queue_name(&q));
            }
            caller.check_queue(&q)?;
            q
        }
        _ => String::new(),
    };
    let t = caller.tenant;
    match (route, method) {
        (Target::Queues, &Method::GET) => list_queues(mns, &caller, headers, origin),
        (Target::Queue(_), &Method::PUT) => {
            let patch = parse_attrs(&body)?;
            if query.get("metaoverride").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                mns.set_queue_attributes(t, &name, &patch).await?;
                Ok(Reply::empty(StatusCode::NO_CONTENT))
            } else {
                let created = mns.create_queue(t, &name, &patch).await?;
                let status = if created { StatusCode::CREATED } else { StatusCode::NO_CONTENT };
                Ok(Reply { status, body: None, location: Some(format!("{origin}/queues/{name}")) })
            }
        }
        (Target::Queue(_), &Method::GET) => {
            let (meta, counts) = mns.queue_attributes(t, &name)?;
            Ok(Reply::xml(
                StatusCode::OK,
                xml::queue_attributes(&name, &meta.attrs, meta.create_time, meta.last_modify_time, counts),
            ))
        }
        (Target::Queue(_), &Method::DELETE) => {
            mns.delete_queue(t, &name).await?;
            Ok(Reply::empty(StatusCode::NO_CONTENT))
        }
        (Target::Messages(_), &Method::POST) => send(mns, t, &name, &body).await,
        (Target::Messages(_), &Method::GET) => receive_or_peek(mns, t, &name, &query).await,
        (Target::Messages(_), &Method::DELETE) => delete(mns, t, &name, &query, &body).await,
        (Target::Messages(_), &Method::PUT) => {
            let handle =
                query.get("receipthandle").filter(|h| !h.is_empty()).ok_or_else(MnsError::missing_receipt_handle)?;
            let seconds = query.get("visibilitytimeout").ok_or_else(MnsError::missing_visibility_timeout)?;
            let seconds = seconds.trim().parse::<u32>().map_err(|_| {
                MnsError::invalid_argument(format!(
                    "The value of VisibilityTimeout should between 1 and 43200 (got {seconds:?})."
                ))
            })?;
            let m = mns.change_visibility(t, &name, handle, seconds).await?;
            Ok(Reply::xml(
                StatusCode::OK,
                xml::change_visibility(m.receipt.as_deref().unwrap_or_default(), m.visible_at),
            ))
        }
        (_, m) => Err(MnsError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestURL",
            format!("The method {m} is not supported on {path:?}."),
        )),
    }
}

fn list_queues(mns: &Mns, caller: &Caller, headers: &HeaderMap, origin: &str) -> Result<Reply, MnsError> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let limit = match h("x-mns-ret-number") {
        "" => 1000,
        v => match v.trim().parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(MnsError::invalid_argument(format!(
                    "The value of x-mns-ret-number should between 1 and 1000 (got {v:?})."
                )));
            }
        },
    };
    let with_meta = h("x-mns-with-meta").eq_ignore_ascii_case("true");
    let (names, next) =
        mns.list_queues(caller.tenant, h("x-mns-prefix"), h("x-mns-marker"), limit, |n| caller.may_use(n));
    let mut listed = Vec::with_capacity(names.len());
    for name in names {
        let meta = if with_meta {
            match mns.queue_attributes(caller.tenant, &name) {
                Ok((m, c)) => Some((name.clone(), m.attrs, m.create_time, m.last_modify_time, c)),
                Err(_) => continue,
            }
        } else {
            None
        };
        listed.push(xml::ListedQueue { url: format!("{origin}/queues/{name}"), meta });
    }
    Ok(Reply::xml(StatusCode::OK, xml::queue_list(&listed, next.as_deref())))
}

fn parse_attrs(body: &[u8]) -> Result<AttrsPatch, MnsError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(AttrsPatch::default());
    }
    let el = xml::parse(body)?;
    if el.name != "Queue" {
        return Err(MnsError::malformed_xml(format!("expected <Queue>, got <{}>", el.name)));
    }
    let num = |n: &str| -> Result<Option<u32>, MnsError> {
        el.child_text(n)
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| MnsError::invalid_argument(format!("The value of {n} is not a number: {v:?}.")))
            })
            .transpose()
    };
    let logging = match el.child_text("LoggingEnabled").map(str::trim) {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
        Some(v) => {
            return Err(MnsError::invalid_argument(format!(
                "The value of LoggingEnabled should be True or False (got {v:?})."
            )));
        }
    };
    Ok(AttrsPatch {
        delay_seconds: num("DelaySeconds")?,
        maximum_message_size: num("MaximumMessageSize")?,
        message_retention_period: num("MessageRetentionPeriod")?,
        visibility_timeout: num("VisibilityTimeout")?,
        polling_wait_seconds: num("PollingWaitSeconds")?,
        logging_enabled: logging,
    })
}

fn parse_message(el: &xml::Element) -> Result<NewMessage, MnsError> {
    let num = |n: &str| -> Result<Option<u32>, MnsError> {
        el.child_text(n)
            .map(|v| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| MnsError::invalid_argument(format!("The value of {n} is not a valid number: {v:?}.")))
            })
            .transpose()
    };
    let priority = match num("Priority")? {
        Some(p) if p > u8::MAX as u32 => {
            return Err(MnsError::invalid_argument(format!(
                "The value of Priority should between 1 and 16 (got {p})."
            )));
        }
        p => p.map(|p| p as u8),
    };
    let properties = el
        .child("UserProperties")
        .map(|u| {
            u.children_named("PropertyValue")
                .map(|p| Property {
                    name: p.child_text("Name").unwrap_or_default().to_string(),
                    value: p.child_text("Value").unwrap_or_default().to_string(),
                    kind: p.child_text("Type").unwrap_or("STRING").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(NewMessage {
        body: el.child_text("MessageBody").unwrap_or_default().to_string(),
        delay_seconds: num("DelaySeconds")?,
        priority,
        properties,
    })
}

async fn send(mns: &Mns, t: emu_core::TenantId, name: &str, body: &[u8]) -> Result<Reply, MnsError> {
    let (batch, msgs) = parse_send(body)?;
    let sent = mns.send(t, name, msgs).await?;
    Ok(Reply::xml(StatusCode::CREATED, xml::document(batch, &sent, xml::sent)))
}

/// A SendMessage (`<Message>`) or BatchSendMessage (`<Messages>`) body: whether it is a batch,
/// and its messages.
fn parse_send(body: &[u8]) -> Result<(bool, Vec<NewMessage>), MnsError> {
    let el = xml::parse(body)?;
    match el.name.as_str() {
        "Message" => Ok((false, vec![parse_message(&el)?])),
        "Messages" => {
            let msgs = el.children_named("Message").map(parse_message).collect::<Result<Vec<_>, _>>()?;
            if msgs.is_empty() || msgs.len() > MAX_BATCH {
                return Err(MnsError::invalid_argument(format!(
                    "A batch holds 1 to {MAX_BATCH} messages (got {}).",
                    msgs.len()
                )));
            }
            let total: usize = msgs.iter().map(|m| m.body.len()).sum();
            if total > crate::queue::MAX_MESSAGE_SIZE as usize {
                return Err(MnsError::invalid_argument(format!(
                    "The total size of a batch's message bodies ({total} bytes) exceeds 65536 bytes."
                )));
            }
            Ok((true, msgs))
        }
        other => Err(MnsError::malformed_xml(format!("expected <Message> or <Messages>, got <{other}>"))),
    }
}

async fn receive_or_peek(mns: &Mns, t: emu_core::TenantId, name: &str, query: &Query) -> Result<Reply, MnsError> {
    let batch = query.number("numofmessages", "numOfMessages", 1, MAX_BATCH as u32)?;
    let n = batch.unwrap_or(1) as usize;
    let peek = query.get("peekonly").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if peek {
        let got = mns.peek(t, name, n)?;
        return Ok(Reply::xml(StatusCode::OK, xml::document(batch.is_some(), &got, xml::peeked)));
    }
    let wait = query.number("waitseconds", "waitseconds", 0, MAX_WAIT_SECONDS)?;
    let got = mns.receive(t, name, n, wait).await?;
    Ok(Reply::xml(StatusCode::OK, xml::document(batch.is_some(), &got, xml::received)))
}

async fn delete(mns: &Mns, t: emu_core::TenantId, name: &str, query: &Query, body: &[u8]) -> Result<Reply, MnsError> {
    if let Some(h) = query.get("receipthandle") {
        if h.is_empty() {
            return Err(MnsError::missing_receipt_handle());
        }
        mns.delete_message(t, name, h).await?;
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    }
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(MnsError::missing_receipt_handle());
    }
    let handles = parse_receipt_handles(body)?;
    let errors = mns.delete_messages(t, name, &handles).await?;
    if errors.is_empty() {
        return Ok(Reply::empty(StatusCode::NO_CONTENT));
    }
    Ok(Reply::xml(StatusCode::NOT_FOUND, xml::batch_delete_errors(&errors)))
}

/// A BatchDeleteMessage body: its receipt handles.
fn parse_receipt_handles(body: &[u8]) -> Result<Vec<String>, MnsError> {
    let el = xml::parse(body)?;
    if el.name != "ReceiptHandles" {
        return Err(MnsError::malformed_xml(format!("expected <ReceiptHandles>, got <{}>", el.name)));
    }
    let handles: Vec<String> = el.children_named("ReceiptHandle").map(|h| h.text.trim().to_string()).collect();
    if handles.is_empty() || handles.len() > MAX_BATCH {
        return Err(MnsError::invalid_argument(format!(
            "A batch holds 1 to {MAX_BATCH} receipt handles (got {}).",
            handles.len()
        )));
    }
    Ok(handles)
}

/// The request parsers without a server, for the fuzz targets (fuzz/, docs/fuzzing.md). Not an
/// API: nothing else uses it.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// SetQueueAttributes / CreateQueue bodies.
    pub fn queue_attributes(body: &[u8]) -> Result<AttrsPatch, MnsError> {
        parse_attrs(body)
    }

    /// SendMessage / BatchSendMessage bodies: (batch, messages).
    pub fn send_body(body: &[u8]) -> Result<(bool, Vec<NewMessage>), MnsError> {
        parse_send(body)
    }

    /// BatchDeleteMessage bodies.
    pub fn receipt_handles(body: &[u8]) -> Result<Vec<String>, MnsError> {
        parse_receipt_handles(body)
    }

    /// A query string: the value of `name` (lower case) and of `name` as a number in `lo..=hi`.
    pub fn query(q: &str, name: &str, lo: u32, hi: u32) -> (Option<String>, Result<Option<u32>, MnsError>) {
        let q = Query::parse(q);
        (q.get(name).map(str::to_string), q.number(name, name, lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(route("/queues"), Target::Queues));
        assert!(matches!(route("/queues/"), Target::Queues));
        assert!(matches!(route("/queues/q"), Target::Queue("q")));
        assert!(matches!(route("/queues/q/messages"), Target::Messages("q")));
        assert!(matches!(route("/queues/q/messages/x"), Target::Other));
        assert!(matches!(route("/topics/t"), Target::Other));
        assert!(matches!(route("/"), Target::Other));
    }

    #[test]
    fn query_names_are_case_insensitive_and_plus_is_kept() {
        let q = Query::parse("receiptHandle=1-a+b%3D&visibilityTimeout=2&peekonly");
        assert_eq!(q.get("receipthandle"), Some("1-a+b="));
        assert_eq!(q.get("visibilitytimeout"), Some("2"));
        assert_eq!(q.get("peekonly"), Some(""));
        assert_eq!(q.number("visibilitytimeout", "VisibilityTimeout", 1, 10).unwrap(), Some(2));
        assert_eq!(q.number("visibilitytimeout", "VisibilityTimeout", 3, 10).unwrap_err().code, "InvalidArgument");
    }
}
