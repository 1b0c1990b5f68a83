//! Input bounds every command is checked against, in the API layer and again in apply.
//!
//! Node-configurable bounds (min/max TTL, max wait) belong to the API layer; the limits here are
//! fixed by the format and checked by apply too, so a bad entry is refused, never half-applied.

use super::command::{Acquire, Mode, Refusal};

/// Longest lock name, in bytes.
pub const MAX_NAME_BYTES: usize = 512;
/// Longest request id, in bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 64;
/// Longest owner text, in bytes.
pub const MAX_OWNER_BYTES: usize = 256;
/// Longest KV key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest KV value, in bytes.
pub const MAX_VALUE_BYTES: usize = 65_536;
/// Longest lock-delay, in milliseconds.
pub const MAX_LOCK_DELAY_MS: u64 = 60_000;

fn invalid(field: &str, message: String) -> Refusal {
    Refusal::InvalidArgument { field: field.to_owned(), message }
}

/// A lock name: 1..=512 bytes of UTF-8 without NUL. `field` names it in the refusal.
pub fn check_name(field: &str, name: &str) -> Result<(), Refusal> {
    let len = name.len();
    if len == 0 || len > MAX_NAME_BYTES || name.contains('\0') {
        let got = if name.contains('\0') && len > 0 && len <= MAX_NAME_BYTES {
            "a NUL byte".to_owned()
        } else {
            format!("{len} bytes")
        };
        return Err(invalid(
            field,
            format!("{field} must be 1..={MAX_NAME_BYTES} bytes of UTF-8 without NUL, got {got}"),
        ));
    }
    Ok(())
}

/// A request id: 1..=64 bytes.
pub fn check_request_id(request_id: &str) -> Result<(), Refusal> {
    let len = request_id.len();
    if len == 0 || len > MAX_REQUEST_ID_BYTES {
        return Err(invalid(
            "request_id",
            format!("request_id must be 1..={MAX_REQUEST_ID_BYTES} bytes, got {len} bytes"),
        ));
    }
    Ok(())
}

/// Owner text: 0..=256 bytes (it is only for humans, so it may be empty).
pub fn check_owner(owner: &str) -> Result<(), Refusal> {
    let len = owner.len();
    if len > MAX_OWNER_BYTES {
        return Err(invalid("owner", format!("owner must be at most {MAX_OWNER_BYTES} bytes, got {len} bytes")));
    }
    Ok(())
}

/// A KV key: 1..=1024 bytes.
pub fn check_key(key: &[u8]) -> Result<(), Refusal> {
    let len = key.len();
    if len == 0 || len > MAX_KEY_BYTES {
        return Err(invalid("key", format!("key must be 1..={MAX_KEY_BYTES} bytes, got {len} bytes")));
    }
    Ok(())
}

/// A KV value: 0..=65536 bytes.
pub fn check_value(value: &[u8]) -> Result<(), Refusal> {
    let len = value.len();
    if len > MAX_VALUE_BYTES {
        return Err(invalid("value", format!("value must be at most {MAX_VALUE_BYTES} bytes, got {len} bytes")));
    }
    Ok(())
}

/// Everything about an Acquire that does not depend on node configuration or on state.
pub fn check_acquire_shape(req: &Acquire) -> Result<(), Refusal> {
    check_name("name", &req.name)?;
    check_request_id(&req.request_id)?;
    check_owner(&req.owner)?;
    if req.ttl_ms == 0 {
        return Err(invalid("ttl_ms", "ttl_ms must be greater than 0, got 0".to_owned()));
    }
    if req.lock_delay_ms > MAX_LOCK_DELAY_MS {
        return Err(invalid(
            "lock_delay_ms",
            format!("lock_delay_ms must be at most {MAX_LOCK_DELAY_MS}, got {}", req.lock_delay_ms),
        ));
    }
    if req.mode == Mode::Exclusive && req.limit != 0 {
        return Err(invalid(
            "limit",
            format!("limit applies to SHARED requests only and must be 0 for EXCLUSIVE, got {}", req.limit),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acquire() -> Acquire {
        Acquire {
            name: "job".into(),
            request_id: "r1".into(),
            owner: "me".into(),
            mode: Mode::Exclusive,
            limit: 0,
            ttl_ms: 1000,
            lock_delay_ms: 0,
            wait: true,
        }
    }

    fn message(r: Result<(), Refusal>) -> (String, String) {
        match r {
            Err(Refusal::InvalidArgument { field, message }) => (field, message),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn names_at_the_limit_pass_and_longer_ones_name_the_limit() {
        assert!(check_name("name", &"a".repeat(MAX_NAME_BYTES)).is_ok());
        let (field, msg) = message(check_name("name", &"a".repeat(600)));
        assert_eq!(field, "name");
        assert_eq!(msg, "name must be 1..=512 bytes of UTF-8 without NUL, got 600 bytes");
    }

    #[test]
    fn empty_names_and_names_with_nul_are_refused() {
        assert!(check_name("name", "").is_err());
        let (_, msg) = message(check_name("name", "a\0b"));
        assert!(msg.contains("NUL"), "{msg}");
    }

    #[test]
    fn request_owner_key_and_value_bounds_are_enforced() {
        assert!(check_request_id(&"r".repeat(64)).is_ok());
        assert_eq!(message(check_request_id(&"r".repeat(65))).0, "request_id");
        assert!(check_request_id("").is_err());
        assert!(check_owner("").is_ok());
        assert_eq!(message(check_owner(&"o".repeat(257))).0, "owner");
        assert!(check_key(&[1; 1024]).is_ok());
        assert_eq!(message(check_key(&[1; 1025])).0, "key");
        assert!(check_key(&[]).is_err());
        assert!(check_value(&[]).is_ok());
        assert!(check_value(&vec![0; MAX_VALUE_BYTES]).is_ok());
        assert_eq!(message(check_value(&vec![0; MAX_VALUE_BYTES + 1])).0, "value");
    }

    #[test]
    fn acquire_shape_refuses_zero_ttl_long_delay_and_exclusive_limit() {
        assert!(check_acquire_shape(&acquire()).is_ok());
        let zero_ttl = Acquire { ttl_ms: 0, ..acquire() };
        assert_eq!(message(check_acquire_shape(&zero_ttl)).0, "ttl_ms");
        let long_delay = Acquire { lock_delay_ms: 60_001, ..acquire() };
        let (field, msg) = message(check_acquire_shape(&long_delay));
        assert_eq!(field, "lock_delay_ms");
        assert!(msg.contains("60000"), "{msg}");
        let limited = Acquire { limit: 2, ..acquire() };
        assert_eq!(message(check_acquire_shape(&limited)).0, "limit");
        let shared = Acquire { limit: 2, mode: Mode::Shared, ..acquire() };
        assert!(check_acquire_shape(&shared).is_ok());
    }
}
