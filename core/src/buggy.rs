//! The client's seeded bug, for proving that the chaos suite catches it (the server's are in
//! `tenure-server`'s `buggy` module). Compiled in only with the test-only feature `buggy`, and
//! then active only when selected, by `TENURE_BUGGY=bound-from-receipt` or
//! [`set_bound_from_receipt`]: the lease bound is taken from the time an acknowledgement is
//! *received* instead of the time its request was *sent* (DESIGN §3), so a slow answer
//! stretches the client's belief past the leader's deadline.

#[cfg(feature = "buggy")]
mod selector {
    use std::sync::atomic::{AtomicU8, Ordering};

    const UNREAD: u8 = 0;
    const OFF: u8 = 1;
    const ON: u8 = 2;
    static STATE: AtomicU8 = AtomicU8::new(UNREAD);

    pub fn set(on: bool) {
        STATE.store(if on { ON } else { OFF }, Ordering::SeqCst);
    }

    pub fn get() -> bool {
        match STATE.load(Ordering::SeqCst) {
            UNREAD => {
                let on = std::env::var("TENURE_BUGGY").is_ok_and(|v| v == "bound-from-receipt");
                set(on);
                on
            }
            s => s == ON,
        }
    }
}

/// Turns the seeded bug on or off for this process (test builds with feature `buggy` only).
#[cfg(feature = "buggy")]
pub fn set_bound_from_receipt(on: bool) {
    if on {
        tracing::warn!("SEEDED BUG ACTIVE: bound-from-receipt (this client is deliberately unsafe)");
    }
    selector::set(on);
}

/// Whether the client takes its lease bound from receipt time.
#[cfg(feature = "buggy")]
pub(crate) fn bound_from_receipt() -> bool {
    selector::get()
}

/// Never, in a build without `buggy`.
#[cfg(not(feature = "buggy"))]
#[inline(always)]
pub(crate) fn bound_from_receipt() -> bool {
    false
}
