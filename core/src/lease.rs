//! What the client knows about one of its leases (held or waiting): until when it is surely
//! alive, and whether it was lost.
//!
//! The rule (DESIGN §3): a lease is alive until the *send* time of its last acknowledged
//! Acquire or Renew plus `ttl × (1 − margin)`, on the boot clock. The leader starts the lease's
//! deadline no earlier than it received that request, so the client always gives up first.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::BootInstant;
use crate::conn::lock;

/// The share of the TTL the client keeps back for clock-rate differences and delivery delay,
/// by default.
pub(crate) const DEFAULT_SAFETY_MARGIN_PERCENT: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Acquire sent, not granted yet (maybe queued).
    Waiting,
    /// Granted and believed alive.
    Held,
    /// Lost or in doubt: the holder must stop.
    Lost,
    /// Released, cancelled or detached by its owner.
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Live,
    Lost,
    Ended,
}

struct Progress {
    phase: Phase,
    alive_until: Option<BootInstant>,
    last_sent: Option<BootInstant>,
    why_lost: String,
}

pub(crate) struct LeaseState {
    pub name: String,
    pub request_id: String,
    pub ttl: Duration,
    alive_window: Duration,
    progress: Mutex<Progress>,
    signal: watch::Sender<Signal>,
}

impl LeaseState {
    /// A lease whose Acquire was just sent at `sent`.
    pub(crate) fn new(
        name: String,
        request_id: String,
        ttl: Duration,
        margin_percent: u32,
        sent: BootInstant,
    ) -> LeaseState {
        LeaseState {
            name,
            request_id,
            ttl,
            alive_window: ttl * (100 - margin_percent.min(99)) / 100,
            progress: Mutex::new(Progress {
                phase: Phase::Waiting,
                alive_until: None,
                last_sent: Some(sent),
                why_lost: String::new(),
            }),
            signal: watch::Sender::new(Signal::Live),
        }
    }

    /// The leader confirmed the lease for a request sent at `sent`. Ignored once the lease is
    /// lost or ended: a late answer must not move the bound of a lease the holder has given up
    /// (and that the client may already have released).
    pub(crate) fn acknowledged(&self, sent: BootInstant) {
        let mut p = lock(&self.progress);
        if !matches!(p.phase, Phase::Waiting | Phase::Held) {
            return;
        }
        let sent = if crate::buggy::bound_from_receipt() { BootInstant::now() } else { sent };
        let until = sent + self.alive_window;
        if p.alive_until.is_none_or(|u| until > u) {
            p.alive_until = Some(until);
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        lock(&self.progress).phase
    }

    pub(crate) fn alive_until(&self) -> Option<BootInstant> {
        lock(&self.progress).alive_until
    }

    /// Waiting → Held, if the lease is still surely alive now.
    pub(crate) fn grant(&self) -> bool {
        let mut p = lock(&self.progress);
        let alive = p.alive_until.is_some_and(|u| u > BootInstant::now());
        if alive && p.phase == Phase::Waiting {
            p.phase = Phase::Held;
        }
        alive && p.phase == Phase::Held
    }

    pub(crate) fn is_held(&self) -> bool {
        let p = lock(&self.progress);
        p.phase == Phase::Held && p.alive_until.is_some_and(|u| u > BootInstant::now())
    }

    /// Held → Lost, firing the lost signal. Returns whether this call made the change.
    pub(crate) fn mark_lost(&self, why: String) -> bool {
        let mut p = lock(&self.progress);
        if p.phase != Phase::Held {
            return false;
        }
        p.phase = Phase::Lost;
        p.why_lost = why;
        // The bound ends here: the holder must stop now, not at the old bound.
        let now = BootInstant::now();
        p.alive_until = p.alive_until.map(|u| u.min(now));
        drop(p);
        self.signal.send_replace(Signal::Lost);
        true
    }

    /// The leader says the request is gone. Held → Lost (firing the signal). A waiting request
    /// the leader confirmed before is gone too: it becomes Lost so a grant still in flight is
    /// refused. One never confirmed may simply not have arrived yet, and is left alone.
    /// Returns whether a held lease was lost.
    pub(crate) fn server_lost(&self, why: String) -> bool {
        let mut p = lock(&self.progress);
        if p.phase == Phase::Waiting && p.alive_until.is_some() {
            p.phase = Phase::Lost;
            p.why_lost = why;
            return false;
        }
        drop(p);
        self.mark_lost(why)
    }

    /// The owner is done with it (released, cancelled, detached). Returns whether it was still
    /// live (not lost or ended before).
    pub(crate) fn end(&self) -> bool {
        let mut p = lock(&self.progress);
        let was_live = matches!(p.phase, Phase::Waiting | Phase::Held);
        if was_live {
            p.phase = Phase::Ended;
            drop(p);
            self.signal.send_replace(Signal::Ended);
        }
        was_live
    }

    pub(crate) fn why_lost(&self) -> String {
        lock(&self.progress).why_lost.clone()
    }

    /// Whether a renewal is due at `at`: a third of the TTL after the last one was sent.
    pub(crate) fn renewal_due(&self, at: BootInstant) -> bool {
        let p = lock(&self.progress);
        matches!(p.phase, Phase::Waiting | Phase::Held) && p.last_sent.is_none_or(|sent| at >= sent + self.ttl / 3)
    }

    /// When the next renewal falls due; `None` once the lease is lost or ended.
    pub(crate) fn next_renewal(&self) -> Option<BootInstant> {
        let p = lock(&self.progress);
        if !matches!(p.phase, Phase::Waiting | Phase::Held) {
            return None;
        }
        Some(p.last_sent.map_or_else(BootInstant::now, |sent| sent + self.ttl / 3))
    }

    pub(crate) fn mark_sent(&self, at: BootInstant) {
        lock(&self.progress).last_sent = Some(at);
    }

    /// A renewal in flight will never be answered (its stream broke): renew again at once.
    pub(crate) fn forget_sent(&self) {
        lock(&self.progress).last_sent = None;
    }

    pub(crate) fn lost_signal(&self) -> LostSignal {
        LostSignal { rx: self.signal.subscribe() }
    }
}

/// Resolves when a lease is lost. Cheap to clone; outlives the guard it came from.
///
/// ```no_run
/// # async fn f(g: tenure::LockGuard) {
/// let signal = g.lost_signal();
/// tokio::spawn(async move {
///     if signal.wait().await {
///         eprintln!("lease lost: stop writing");
///     }
/// });
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LostSignal {
    rx: watch::Receiver<Signal>,
}

impl LostSignal {
    /// Waits until the lease is lost (`true`) or ended by its owner: released, detached or
    /// dropped (`false`).
    ///
    /// ```no_run
    /// # async fn f(g: tenure::LockGuard) {
    /// let lost = g.lost_signal().wait().await;
    /// # }
    /// ```
    pub async fn wait(&self) -> bool {
        let mut rx = self.rx.clone();
        let lost = rx.wait_for(|s| *s != Signal::Live).await.map(|s| *s == Signal::Lost);
        match lost {
            Ok(lost) => lost,
            Err(_) => *rx.borrow() == Signal::Lost,
        }
    }

    /// Whether the lease has been lost.
    ///
    /// ```no_run
    /// # fn f(g: tenure::LockGuard) {
    /// assert!(!g.lost_signal().is_lost());
    /// # }
    /// ```
    pub fn is_lost(&self) -> bool {
        *self.rx.borrow() == Signal::Lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(ttl_ms: u64) -> LeaseState {
        LeaseState::new(
            "l".into(),
            "r".into(),
            Duration::from_millis(ttl_ms),
            DEFAULT_SAFETY_MARGIN_PERCENT,
            BootInstant::now(),
        )
    }

    #[test]
    fn a_lease_is_alive_for_ninety_percent_of_its_ttl_from_the_acknowledged_send() {
        let l = lease(10_000);
        assert!(!l.grant(), "no acknowledgement yet");
        let sent = BootInstant::now();
        l.acknowledged(sent);
        assert!(l.grant());
        assert_eq!(l.alive_until(), Some(sent + Duration::from_millis(9_000)));
        l.acknowledged(sent + Duration::from_millis(1)); // a later send extends,
        l.acknowledged(sent); // an earlier one never shortens
        assert_eq!(l.alive_until(), Some(sent + Duration::from_millis(9_001)));
        assert!(l.is_held());
    }

    #[test]
    fn an_acknowledgement_that_arrives_too_late_does_not_grant() {
        let l = lease(1_000);
        l.acknowledged(BootInstant::now());
        std::thread::sleep(Duration::from_millis(950));
        assert!(!l.grant(), "past 900 ms the lease is in doubt");
        assert!(!l.is_held());
    }

    #[tokio::test]
    async fn losing_fires_the_signal_and_ending_does_not() {
        let l = lease(10_000);
        l.acknowledged(BootInstant::now());
        assert!(l.grant());
        let s = l.lost_signal();
        assert!(!s.is_lost());
        assert!(l.mark_lost("test".into()));
        assert!(!l.mark_lost("again".into()), "only once");
        assert!(s.wait().await && s.is_lost());
        assert_eq!(l.why_lost(), "test");
        assert!(!l.end(), "a lost lease is not live");

        let ended = lease(10_000);
        let s = ended.lost_signal();
        assert!(ended.end());
        assert!(!s.wait().await, "a released lease resolves as not lost");
        assert!(!ended.mark_lost("late".into()));
    }

    #[test]
    fn a_confirmed_waiter_reported_gone_can_no_longer_be_granted() {
        let unconfirmed = lease(10_000);
        assert!(!unconfirmed.server_lost("not there yet".into()));
        unconfirmed.acknowledged(BootInstant::now());
        assert!(unconfirmed.grant(), "an unconfirmed waiter's 'lost' is ignored");

        let confirmed = lease(10_000);
        confirmed.acknowledged(BootInstant::now());
        assert!(!confirmed.server_lost("released by an admin".into()));
        assert!(!confirmed.grant(), "a grant in flight must be refused");
        assert_eq!(confirmed.phase(), Phase::Lost);
    }

    #[test]
    fn a_lost_lease_keeps_the_bound_it_was_lost_at() {
        // Found by the chaos harness: a renewal sent just before the lease ran out was
        // answered after the client had marked it lost and released it; the late answer moved
        // `valid_until` past the moment the lock went to the next holder.
        let l = lease(10_000);
        let sent = BootInstant::now();
        l.acknowledged(sent);
        assert!(l.grant());
        assert!(l.mark_lost("renewal not confirmed".into()));
        let at_loss = l.alive_until().expect("a bound");
        assert!(at_loss <= BootInstant::now(), "the bound ends when the lease is lost");
        l.acknowledged(BootInstant::now());
        assert_eq!(l.alive_until(), Some(at_loss), "a late answer does not revive the bound");
        assert!(!l.is_held());

        let ended = lease(10_000);
        ended.acknowledged(sent);
        assert!(ended.end());
        ended.acknowledged(sent + Duration::from_millis(500));
        assert_eq!(ended.alive_until(), Some(sent + Duration::from_millis(9_000)));
    }

    #[test]
    fn renewals_fall_due_a_third_of_the_ttl_after_the_last_send() {
        let l = lease(12_000);
        let sent = BootInstant::now();
        l.mark_sent(sent);
        assert!(!l.renewal_due(sent + Duration::from_millis(3_999)));
        assert!(l.renewal_due(sent + Duration::from_millis(4_000)));
        l.forget_sent();
        assert!(l.renewal_due(sent));
    }
}
