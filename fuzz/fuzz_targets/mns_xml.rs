//! MNS request bodies (crates/emu-mns/src/xml.rs, http.rs): the XML tree stays within its depth
//! and element caps; SendMessage, BatchDeleteMessage and queue-attribute bodies parse or are
//! refused with a vendor error; a message body and its properties come back unchanged from the
//! document a ReceiveMessage returns (escaping round trip). Query strings too.
#![no_main]

use emu_mns::http::fuzzing;
use emu_mns::queue::{Property, StoredMessage};
use emu_mns::xml::{self, Element, MAX_DEPTH, MAX_ELEMENTS};
use libfuzzer_sys::fuzz_target;

fn depth(e: &Element) -> usize {
    1 + e.children.iter().map(depth).max().unwrap_or(0)
}

fn count(e: &Element) -> usize {
    1 + e.children.iter().map(count).sum::<usize>()
}

fn stored(body: &str, properties: Vec<Property>) -> StoredMessage {
    StoredMessage {
        seq: 1,
        id: "0123456789ABCDEF-1-1".into(),
        body: body.into(),
        priority: 8,
        enqueue_time: 1,
        first_dequeue_time: Some(2),
        dequeue_count: 1,
        visible_at: 3,
        receipt: Some("1-ODU4OTkzNDU5My0xNDM1MTk3NjAwLTItOA==".into()),
        handles_issued: 1,
        expires_at: 4,
        properties,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(root) = xml::parse(data) {
        assert!(depth(&root) <= MAX_DEPTH, "a tree deeper than the cap");
        assert!(count(&root) <= MAX_ELEMENTS, "more elements than the cap");
    }
    let _ = fuzzing::queue_attributes(data);
    let _ = fuzzing::receipt_handles(data);
    match fuzzing::send_body(data) {
        Ok((_, messages)) => {
            for m in messages {
                let doc = xml::document(false, &[stored(&m.body, m.properties.clone())], xml::received);
                let back = xml::parse(doc.as_bytes()).expect("our own document parses");
                assert_eq!(back.child_text("MessageBody"), Some(m.body.as_str()), "message body round trip");
                let props: Vec<(&str, &str)> = back
                    .child("UserProperties")
                    .map(|u| {
                        u.children_named("PropertyValue")
                            .map(|p| (p.child_text("Name").unwrap_or(""), p.child_text("Value").unwrap_or("")))
                            .collect()
                    })
                    .unwrap_or_default();
                let sent: Vec<(&str, &str)> =
                    m.properties.iter().map(|p| (p.name.as_str(), p.value.as_str())).collect();
                assert_eq!(props, sent, "user properties round trip");
            }
        }
        Err(e) => assert!(!e.code.is_empty()),
    }
    let q = String::from_utf8_lossy(data);
    let (value, number) = fuzzing::query(&q, "waitseconds", 0, 30);
    if let Ok(Some(n)) = number {
        assert!(n <= 30);
        assert!(value.is_some());
    }
});
