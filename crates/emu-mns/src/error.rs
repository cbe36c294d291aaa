//! MNS errors: the vendor's codes, HTTP statuses and the error XML every SDK parses (docs/mns.md#errors).

use axum::http::StatusCode;

/// The namespace of `<Error>`: **no trailing slash** (the Java SDK's JAXB binding needs exactly
/// this; Python and Node ignore namespaces).
pub const ERROR_NS: &str = "http://mns.aliyuncs.com/doc/v1";

/// One vendor error: HTTP status, `Code`, `Message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct MnsError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl MnsError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        MnsError { status, code, message: message.into() }
    }

    pub fn message_not_exist() -> Self {
        Self::new(StatusCode::NOT_FOUND, "MessageNotExist", "Message not exist.")
    }

    pub fn queue_not_exist() -> Self {
        Self::new(StatusCode::NOT_FOUND, "QueueNotExist", "The queue name you provided is not exist.")
    }

    pub fn queue_already_exist() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "QueueAlreadyExist",
            "The queue you want to create already exists with different attributes.",
        )
    }

    pub fn receipt_handle_error() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ReceiptHandleError", "The receipt handle you provide is not valid.")
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidArgument", message)
    }

    pub fn malformed_xml(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MalformedXML",
            format!("The XML you provided was not well-formed: {detail}"),
        )
    }

    pub fn missing_receipt_handle() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MissingReceiptHandle", "ReceiptHandle is mandatory for this action.")
    }

    pub fn missing_visibility_timeout() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MissingVisibilityTimeout",
            "VisibilityTimeout is mandatory for this action.",
        )
    }

    pub fn invalid_queue_name(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidQueueName",
            format!(
                "The queue name {name:?} is not valid: 1-256 characters, letters, digits and '-', starting with a letter."
            ),
        )
    }

    pub fn invalid_access_key_id() -> Self {
        Self::new(StatusCode::FORBIDDEN, "InvalidAccessKeyId", "The AccessKey Id you provided is not exist.")
    }

    pub fn signature_does_not_match(string_to_sign: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            format!(
                "The request signature we calculated does not match the signature you provided. Server string to sign: {string_to_sign:?}"
            ),
        )
    }

    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AccessDenied", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }
}

/// `<?xml …?><Error xmlns="http://mns.aliyuncs.com/doc/v1"><Code/><Message/><RequestId/><HostId/></Error>`.
pub fn error_xml(err: &MnsError, request_id: &str, host_id: &str) -> String {
    use quick_xml::escape::escape;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error xmlns=\"{ERROR_NS}\"><Code>{}</Code><Message>{}</Message><RequestId>{}</RequestId><HostId>{}</HostId></Error>",
        escape(err.code),
        escape(err.message.as_str()),
        escape(request_id),
        escape(host_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_xml_has_all_four_fields_and_the_slashless_namespace() {
        let x = error_xml(&MnsError::message_not_exist(), "5F2B", "http://127.0.0.1:18081");
        assert_eq!(
            x,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error xmlns=\"http://mns.aliyuncs.com/doc/v1\"><Code>MessageNotExist</Code><Message>Message not exist.</Message><RequestId>5F2B</RequestId><HostId>http://127.0.0.1:18081</HostId></Error>"
        );
    }

    #[test]
    fn error_xml_escapes() {
        let e = MnsError::invalid_argument("a < b & c");
        assert!(error_xml(&e, "r", "h").contains("<Message>a &lt; b &amp; c</Message>"));
    }
}
