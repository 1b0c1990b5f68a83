//! The clock that lease deadlines are measured on.
//!
//! On Linux it is `CLOCK_BOOTTIME`, which keeps running while the machine is suspended: a laptop
//! that sleeps for an hour with a lease must wake up knowing the lease is lost (DESIGN §3).
//! Elsewhere it falls back to the monotonic clock.

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point on the boot clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct BootInstant(Duration);

impl BootInstant {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn now() -> Self {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        BootInstant(Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32))
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(crate) fn now() -> Self {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        BootInstant(ORIGIN.get_or_init(std::time::Instant::now).elapsed())
    }

    /// The same moment on the process's monotonic clock (`Instant`), for callers that measure
    /// with it. The two clocks differ only across a suspend.
    pub(crate) fn to_instant(self) -> std::time::Instant {
        let (now, instant) = (Self::now(), std::time::Instant::now());
        if self >= now {
            instant + (self - now)
        } else {
            instant.checked_sub(now - self).unwrap_or(instant)
        }
    }

    /// How long until `self`, or zero if it has passed.
    pub(crate) fn saturating_until(self) -> Duration {
        self.0.saturating_sub(Self::now().0)
    }
}

impl Add<Duration> for BootInstant {
    type Output = BootInstant;
    fn add(self, d: Duration) -> BootInstant {
        BootInstant(self.0.saturating_add(d))
    }
}

impl Sub<BootInstant> for BootInstant {
    type Output = Duration;
    fn sub(self, earlier: BootInstant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_clock_moves_forward_with_real_time() {
        let a = BootInstant::now();
        std::thread::sleep(Duration::from_millis(20));
        let b = BootInstant::now();
        assert!(b - a >= Duration::from_millis(20), "{a:?} -> {b:?}");
        assert_eq!(a - b, Duration::ZERO);
        assert!((b + Duration::from_secs(1)).saturating_until() > Duration::from_millis(900));
    }
}
