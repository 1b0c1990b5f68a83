//! The core's errors for JavaScript. napi rejects a promise with a plain `Error` whose message
//! we choose, so the code (and, for INVALID_ARGUMENT, the field) travel as a message prefix,
//! `TENURE_<CODE>[<field>]: <message>`, that sdk-node/index.js turns into one class per code.

/// `e` as a napi error carrying its code prefix.
pub fn to_napi(e: tenure::Error) -> napi::Error {
    let field = match &e {
        tenure::Error::InvalidArgument { field, .. } => field.as_str(),
        _ => "",
    };
    napi::Error::from_reason(format!("TENURE_{}[{field}]: {e}", e.code()))
}

/// An INVALID_ARGUMENT naming `field`, for arguments this glue converts itself.
pub fn invalid(field: &str, message: String) -> tenure::Error {
    tenure::Error::InvalidArgument { field: field.to_string(), message }
}
