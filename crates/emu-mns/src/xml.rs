//! Request bodies parsed namespace-agnostically into a small tree (Java and Python use
//! `…/doc/v1` resp. `…/doc/v1/`, Node does not XML-escape values), and the response documents.

use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::reader::Reader;

use crate::error::MnsError;
use crate::queue::{Counts, Property, QueueAttrs, StoredMessage};

/// The namespace of success documents (the vendor's samples carry the trailing slash).
pub const DOC_NS: &str = "http://mns.aliyuncs.com/doc/v1/";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Element {
    /// Local name (any namespace prefix dropped).
    pub name: String,
    /// Text directly inside the element, entities resolved.
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

fn local(name: &[u8]) -> String {
    let name = match name.iter().rposition(|b| *b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    };
    String::from_utf8_lossy(name).into_owned()
}

fn resolve_entity(name: &str) -> Option<String> {
    Some(
        match name {
            "lt" => "<",
            "gt" => ">",
            "amp" => "&",
            "apos" => "'",
            "quot" => "\"",
            _ => {
                let n = name.strip_prefix('#')?;
                let code = match n.strip_prefix('x').or_else(|| n.strip_prefix('X')) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => n.parse().ok()?,
                };
                return char::from_u32(code).map(String::from);
            }
        }
        .to_string(),
    )
}

/// The deepest nesting a request body may have (the vendor's documents have at most 4 levels:
/// `Messages/Message/UserProperties/PropertyValue/Name`). Deeper bodies are refused before the tree
/// is built, so no unbounded recursive structure is ever built or dropped.
pub const MAX_DEPTH: usize = 32;

/// The most elements a request body may have (a batch holds at most 16 messages of a handful of
/// elements each, plus their user properties).
pub const MAX_ELEMENTS: usize = 4096;

/// Parses a whole document into its root element. Anything not well-formed, nested deeper than
/// [`MAX_DEPTH`] or with more than [`MAX_ELEMENTS`] elements is `MalformedXML`.
pub fn parse(body: &[u8]) -> Result<Element, MnsError> {
    let text = std::str::from_utf8(body).map_err(|_| MnsError::malformed_xml("the body is not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let event = reader.read_event().map_err(MnsError::malformed_xml)?;
        if matches!(event, Event::Start(_) | Event::Empty(_)) {
            elements += 1;
            if elements > MAX_ELEMENTS {
                return Err(MnsError::malformed_xml(format!("more than {MAX_ELEMENTS} elements")));
            }
        }
        match event {
            Event::Start(s) => {
                if root.is_some() {
                    return Err(MnsError::malformed_xml("content after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(MnsError::malformed_xml(format!("elements nested deeper than {MAX_DEPTH} levels")));
                }
                stack.push(Element { name: local(s.name().as_ref()), ..Default::default() });
            }
            Event::Empty(s) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(MnsError::malformed_xml(format!("elements nested deeper than {MAX_DEPTH} levels")));
                }
                let el = Element { name: local(s.name().as_ref()), ..Default::default() };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err(MnsError::malformed_xml("content after the root element")),
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(|| MnsError::malformed_xml("unbalanced end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(MnsError::malformed_xml)?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err(MnsError::malformed_xml("text outside the root element")),
                }
            }
            Event::CData(c) => {
                let s = String::from_utf8_lossy(&c.into_inner()).into_owned();
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(MnsError::malformed_xml)?;
                let resolved =
                    resolve_entity(&name).ok_or_else(|| MnsError::malformed_xml(format!("unknown entity &{name};")))?;
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(MnsError::malformed_xml("unexpected end of document"));
    }
    root.ok_or_else(|| MnsError::malformed_xml("the body has no root element"))
}

// ------------------------------------------------------------------------------------------
// responses

pub const DECL: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

fn tag(out: &mut String, name: &str, value: impl std::fmt::Display) {
    use std::fmt::Write;
    let _ = write!(out, "<{name}>{}</{name}>", escape(value.to_string().as_str()));
}

/// `<Message><MessageId/><MessageBodyMD5/></Message>` (SendMessage).
pub fn sent(out: &mut String, msg: &StoredMessage) {
    out.push_str("<Message>");
    tag(out, "MessageId", &msg.id);
    tag(out, "MessageBodyMD5", msg.body_md5());
    out.push_str("</Message>");
}

fn properties(out: &mut String, props: &[Property]) {
    if props.is_empty() {
        return;
    }
    out.push_str("<UserProperties>");
    for p in props {
        out.push_str("<PropertyValue>");
        tag(out, "Name", &p.name);
        tag(out, "Value", &p.value);
        tag(out, "Type", &p.kind);
        out.push_str("</PropertyValue>");
    }
    out.push_str("</UserProperties>");
}

/// A received message: every field the Python SDK insists on.
pub fn received(out: &mut String, msg: &StoredMessage) {
    out.push_str("<Message>");
    tag(out, "MessageId", &msg.id);
    tag(out, "ReceiptHandle", msg.receipt.as_deref().unwrap_or_default());
    tag(out, "MessageBody", &msg.body);
    tag(out, "MessageBodyMD5", msg.body_md5());
    tag(out, "EnqueueTime", msg.enqueue_time);
    tag(out, "NextVisibleTime", msg.visible_at);
    tag(out, "FirstDequeueTime", msg.first_dequeue_time.unwrap_or(msg.enqueue_time));
    tag(out, "DequeueCount", msg.dequeue_count);
    tag(out, "Priority", msg.priority);
    properties(out, &msg.properties);
    out.push_str("</Message>");
}

/// A peeked message: no ReceiptHandle / NextVisibleTime.
pub fn peeked(out: &mut String, msg: &StoredMessage) {
    out.push_str("<Message>");
    tag(out, "MessageId", &msg.id);
    tag(out, "MessageBody", &msg.body);
    tag(out, "MessageBodyMD5", msg.body_md5());
    tag(out, "EnqueueTime", msg.enqueue_time);
    tag(out, "FirstDequeueTime", msg.first_dequeue_time.unwrap_or(msg.enqueue_time));
    tag(out, "DequeueCount", msg.dequeue_count);
    tag(out, "Priority", msg.priority);
    properties(out, &msg.properties);
    out.push_str("</Message>");
}

/// One message, or several in `<Messages>`, with the document namespace.
pub fn document(batch: bool, msgs: &[StoredMessage], each: fn(&mut String, &StoredMessage)) -> String {
    let mut out = String::with_capacity(256 + msgs.iter().map(|m| m.body.len() + 400).sum::<usize>());
    out.push_str(DECL);
    if batch {
        out.push_str(&format!("<Messages xmlns=\"{DOC_NS}\">"));
        for m in msgs {
            each(&mut out, m);
        }
        out.push_str("</Messages>");
    } else if let Some(m) = msgs.first() {
        let mut one = String::new();
        each(&mut one, m);
        // Put the namespace on the single root element.
        out.push_str(&one.replacen("<Message>", &format!("<Message xmlns=\"{DOC_NS}\">"), 1));
    }
    out
}

pub fn change_visibility(receipt: &str, next_visible: u64) -> String {
    let mut out = String::from(DECL);
    out.push_str(&format!("<ChangeVisibility xmlns=\"{DOC_NS}\">"));
    tag(&mut out, "ReceiptHandle", receipt);
    tag(&mut out, "NextVisibleTime", next_visible);
    out.push_str("</ChangeVisibility>");
    out
}

/// GetQueueAttributes: all 12 elements the Python SDK requires.
pub fn queue_attributes(name: &str, attrs: &QueueAttrs, create_ms: u64, modify_ms: u64, counts: Counts) -> String {
    let mut out = String::from(DECL);
    out.push_str(&format!("<Queue xmlns=\"{DOC_NS}\">"));
    tag(&mut out, "QueueName", name);
    tag(&mut out, "CreateTime", create_ms / 1000);
    tag(&mut out, "LastModifyTime", modify_ms / 1000);
    tag(&mut out, "DelaySeconds", attrs.delay_seconds);
    tag(&mut out, "MaximumMessageSize", attrs.maximum_message_size);
    tag(&mut out, "MessageRetentionPeriod", attrs.message_retention_period);
    tag(&mut out, "VisibilityTimeout", attrs.visibility_timeout);
    tag(&mut out, "PollingWaitSeconds", attrs.polling_wait_seconds);
    tag(&mut out, "ActiveMessages", counts.active);
    tag(&mut out, "InactiveMessages", counts.inactive);
    tag(&mut out, "DelayMessages", counts.delayed);
    tag(&mut out, "LoggingEnabled", if attrs.logging_enabled { "True" } else { "False" });
    out.push_str("</Queue>");
    out
}

/// One entry of ListQueue (with `x-mns-with-meta: true` the attributes too).
pub struct ListedQueue {
    pub url: String,
    pub meta: Option<(String, QueueAttrs, u64, u64, Counts)>,
}

pub fn queue_list(queues: &[ListedQueue], next_marker: Option<&str>) -> String {
    let mut out = String::from(DECL);
    out.push_str(&format!("<Queues xmlns=\"{DOC_NS}\">"));
    for q in queues {
        out.push_str("<Queue>");
        tag(&mut out, "QueueURL", &q.url);
        if let Some((name, a, create, modify, c)) = &q.meta {
            tag(&mut out, "QueueName", name);
            tag(&mut out, "CreateTime", create / 1000);
            tag(&mut out, "LastModifyTime", modify / 1000);
            tag(&mut out, "DelaySeconds", a.delay_seconds);
            tag(&mut out, "MaximumMessageSize", a.maximum_message_size);
            tag(&mut out, "MessageRetentionPeriod", a.message_retention_period);
            tag(&mut out, "VisibilityTimeout", a.visibility_timeout);
            tag(&mut out, "PollingWaitSeconds", a.polling_wait_seconds);
            tag(&mut out, "ActiveMessages", c.active);
            tag(&mut out, "InactiveMessages", c.inactive);
            tag(&mut out, "DelayMessages", c.delayed);
            tag(&mut out, "LoggingEnabled", if a.logging_enabled { "True" } else { "False" });
        }
        out.push_str("</Queue>");
    }
    if let Some(m) = next_marker {
        tag(&mut out, "NextMarker", m);
    }
    out.push_str("</Queues>");
    out
}

/// BatchDeleteMessage partial failure: `<Errors><Error><ErrorCode/><ErrorMessage/><ReceiptHandle/></Error>…</Errors>`.
pub fn batch_delete_errors(errors: &[(String, MnsError)]) -> String {
    let mut out = String::from(DECL);
    out.push_str(&format!("<Errors xmlns=\"{DOC_NS}\">"));
    for (handle, e) in errors {
        out.push_str("<Error>");
        tag(&mut out, "ErrorCode", e.code);
        tag(&mut out, "ErrorMessage", &e.message);
        tag(&mut out, "ReceiptHandle", handle);
        out.push_str("</Error>");
    }
    out.push_str("</Errors>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_python_send_body() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?><Message xmlns="http://mns.aliyuncs.com/doc/v1/"><MessageBody>eyJhIjoxfQ==</MessageBody><Priority>3</Priority></Message>"#;
        let el = parse(body).unwrap();
        assert_eq!(el.name, "Message");
        assert_eq!(el.child_text("MessageBody"), Some("eyJhIjoxfQ=="));
        assert_eq!(el.child_text("Priority"), Some("3"));
    }

    #[test]
    fn namespace_prefixes_and_entities() {
        let el =
            parse(b"<m:Message xmlns:m='x'><m:MessageBody>a &amp; b &#x4E2D;&#25991; &lt;</m:MessageBody></m:Message>")
                .unwrap();
        assert_eq!(el.name, "Message");
        assert_eq!(el.child_text("MessageBody"), Some("a & b \u{4e2d}\u{6587} <"));
    }

    #[test]
    fn batch_bodies() {
        let el =
            parse(b"<ReceiptHandles><ReceiptHandle>a</ReceiptHandle><ReceiptHandle>b</ReceiptHandle></ReceiptHandles>")
                .unwrap();
        let v: Vec<_> = el.children_named("ReceiptHandle").map(|c| c.text.as_str()).collect();
        assert_eq!(v, ["a", "b"]);
        let el = parse(b"<Queue xmlns=\"http://mns.aliyuncs.com/doc/v1/\"/>").unwrap();
        assert_eq!(el.name, "Queue");
        assert!(el.children.is_empty());
    }

    #[test]
    fn nesting_and_element_count_are_capped() {
        let nest = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
        assert!(parse(nest(MAX_DEPTH).as_bytes()).is_ok());
        assert!(
            parse(format!("{}<b/>{}", "<a>".repeat(MAX_DEPTH - 1), "</a>".repeat(MAX_DEPTH - 1)).as_bytes()).is_ok()
        );
        for bad in [
            nest(MAX_DEPTH + 1),
            nest(50_000),
            format!("{}<b/>{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH)),
            format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS)),
        ] {
            assert_eq!(parse(bad.as_bytes()).unwrap_err().code, "MalformedXML");
        }
        assert!(parse(format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS - 1)).as_bytes()).is_ok());
    }

    #[test]
    fn malformed_is_refused() {
        for bad in [&b"<Message><MessageBody>x</Message>"[..], b"", b"not xml", b"<a></a><b></b>", b"<a>&bogus;</a>"] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.code, "MalformedXML", "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
