//! Unit tests of [`Command::ForceRelease`]: the admin's release of holds.
#![allow(clippy::unwrap_used)]

use super::command::*;
use super::table::*;

const NOW: u64 = 1_000;

fn exclusive(name: &str, id: &str) -> Acquire {
    Acquire {
        name: name.into(),
        request_id: id.into(),
        owner: format!("owner-{id}"),
        mode: Mode::Exclusive,
        limit: 0,
        ttl_ms: 10_000,
        lock_delay_ms: 0,
        wait: true,
    }
}

fn shared(name: &str, id: &str, limit: u32) -> Acquire {
    Acquire { mode: Mode::Shared, limit, ..exclusive(name, id) }
}

/// An immediate handover: most tests here are about who is released and granted.
fn force(name: &str, id: &str) -> Command {
    Command::ForceRelease { name: name.into(), target: ForceTarget::Request(id.into()), immediate: true }
}

fn force_all(name: &str, max_token: u64) -> Command {
    Command::ForceRelease { name: name.into(), target: ForceTarget::All { max_token }, immediate: true }
}

fn apply(t: &mut LockTable, cmd: Command) -> (CommandResult, Vec<Event>) {
    let mut events = Vec::new();
    let batch = Batch { now_ms: NOW, caps: Caps::default(), commands: vec![cmd] };
    let mut results = t.apply(1, &batch, &mut events);
    (results.remove(0), events)
}

/// Request ids and tokens.
type Holds = Vec<(String, u64)>;

/// (released, granted)
fn forced(t: &mut LockTable, cmd: Command) -> (Holds, Holds) {
    match apply(t, cmd).0 {
        CommandResult::ForceRelease { released, granted } => {
            let ids = |ls: Vec<Lease>| ls.into_iter().map(|l| (l.request_id, l.token)).collect();
            (ids(released), ids(granted))
        }
        other => panic!("expected a force-release result, got {other:?}"),
    }
}

fn token_of(t: &mut LockTable, a: Acquire) -> u64 {
    match apply(t, Command::Acquire(a)).0 {
        CommandResult::Acquire(AcquireOutcome::Granted(l)) => l.token,
        CommandResult::Acquire(_) => 0,
        other => panic!("{other:?}"),
    }
}

fn ids(t: &LockTable, name: &str) -> (Vec<String>, Vec<String>) {
    t.lock(name).map_or_else(Default::default, |l| {
        (
            l.holders.iter().map(|h| h.request_id.clone()).collect(),
            l.waiters.iter().map(|w| w.request_id.clone()).collect(),
        )
    })
}

fn invalid_field(r: CommandResult) -> String {
    match r {
        CommandResult::Refused(Refusal::InvalidArgument { field, .. }) => field,
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
}

#[test]
fn force_releasing_a_holder_grants_the_next_waiter_with_a_higher_token() {
    let mut t = LockTable::new();
    let a = token_of(&mut t, exclusive("x", "a"));
    token_of(&mut t, exclusive("x", "b"));
    token_of(&mut t, exclusive("x", "c"));
    let (result, events) = apply(&mut t, force("x", "a"));
    let CommandResult::ForceRelease { released, granted } = result else { panic!("{result:?}") };
    assert_eq!(released.iter().map(|l| (&*l.request_id, l.token)).collect::<Vec<_>>(), [("a", a)]);
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0].request_id, "b");
    assert!(granted[0].token > a);
    let how = Finish::ForceReleased;
    assert_eq!(events[0], Event::Finished { name: "x".into(), request_id: "a".into(), how, token: a });
    assert!(matches!(&events[1], Event::Granted { request_id, .. } if request_id == "b"));
    assert_eq!(ids(&t, "x"), (vec!["b".into()], vec!["c".into()]));
    // The tombstone says how it ended: a retried Acquire of "a" is refused as finished.
    match apply(&mut t, Command::Acquire(exclusive("x", "a"))).0 {
        CommandResult::Refused(Refusal::RequestFinished { finish, .. }) => assert_eq!(finish, Finish::ForceReleased),
        other => panic!("{other:?}"),
    }
    assert!(t.leases().all(|l| l.request_id != "a"), "a's lease must be gone for renewals");
}

#[test]
fn force_release_is_idempotent_and_a_repeat_releases_nothing() {
    let mut t = LockTable::new();
    token_of(&mut t, exclusive("x", "a"));
    token_of(&mut t, exclusive("x", "b"));
    forced(&mut t, force("x", "a"));
    t.take_dirty();
    let before = t.clone();
    assert_eq!(forced(&mut t, force("x", "a")), (vec![], vec![]));
    // A plain Release of a force-released id also answers "not held".
    let (r, _) = apply(&mut t, Command::Release { name: "x".into(), request_id: "a".into() });
    assert_eq!(r, CommandResult::Release { was_held: false, was_queued: false });
    assert_eq!(t, before);
    assert!(t.take_dirty().is_empty());
}

#[test]
fn force_release_of_an_unknown_id_or_a_free_lock_changes_nothing_and_leaves_no_tombstone() {
    let mut t = LockTable::new();
    let (r, events) = apply(&mut t, force("x", "ghost"));
    assert_eq!(r, CommandResult::ForceRelease { released: vec![], granted: vec![] });
    assert!(events.is_empty());
    assert_eq!(forced(&mut t, force_all("x", 0)), (vec![], vec![]));
    assert_eq!(t, LockTable::new());
    assert!(t.take_dirty().is_empty());
    // The id is still free to use.
    assert!(token_of(&mut t, exclusive("x", "ghost")) > 0);
}

#[test]
fn force_release_of_a_queued_request_is_refused_and_changes_nothing() {
    let mut t = LockTable::new();
    token_of(&mut t, exclusive("x", "a"));
    token_of(&mut t, exclusive("x", "b"));
    t.take_dirty();
    let before = t.clone();
    let (r, events) = apply(&mut t, force("x", "b"));
    match &r {
        CommandResult::Refused(Refusal::InvalidArgument { field, message }) => {
            assert_eq!(field, "request_id");
            assert!(message.contains("queued") && message.contains("Release"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(events.is_empty());
    assert_eq!(t, before);
    assert!(t.take_dirty().is_empty());
}

#[test]
fn force_release_refuses_bad_input_and_another_lock_naming_the_field() {
    let mut t = LockTable::new();
    token_of(&mut t, exclusive("x", "a"));
    assert_eq!(invalid_field(apply(&mut t, force("", "a")).0), "name");
    assert_eq!(invalid_field(apply(&mut t, force_all("a\0b", 0)).0), "name");
    assert_eq!(invalid_field(apply(&mut t, force("x", "")).0), "request_id");
    assert_eq!(invalid_field(apply(&mut t, force("x", &"r".repeat(65))).0), "request_id");
    assert_eq!(invalid_field(apply(&mut t, force("y", "a")).0), "name");
    assert_eq!(ids(&t, "x").0, ["a"]);
}

#[test]
fn force_release_all_releases_every_shared_holder_and_keeps_the_waiters() {
    let mut t = LockTable::new();
    let s1 = token_of(&mut t, shared("sem", "s1", 3));
    let s2 = token_of(&mut t, shared("sem", "s2", 3));
    let s3 = token_of(&mut t, shared("sem", "s3", 3));
    token_of(&mut t, exclusive("sem", "w"));
    token_of(&mut t, shared("sem", "s4", 3));
    let (released, granted) = forced(&mut t, force_all("sem", 0));
    assert_eq!(released, [("s1".into(), s1), ("s2".into(), s2), ("s3".into(), s3)]);
    // FIFO: the EXCLUSIVE head is granted alone; s4 waits behind it.
    assert_eq!(granted.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["w"]);
    assert!(granted[0].1 > s3);
    assert_eq!(ids(&t, "sem"), (vec!["w".into()], vec!["s4".into()]));
}

#[test]
fn force_release_all_spares_holds_newer_than_max_token() {
    let mut t = LockTable::new();
    let a = token_of(&mut t, shared("sem", "a", 0));
    let b = token_of(&mut t, shared("sem", "b", 0));
    let (released, _) = forced(&mut t, force_all("sem", a));
    assert_eq!(released, [("a".into(), a)]);
    assert_eq!(ids(&t, "sem").0, ["b"]);
    assert_eq!(forced(&mut t, force_all("sem", a)), (vec![], vec![]));
    assert_eq!(forced(&mut t, force_all("sem", b)).0, [("b".into(), b)]);
    assert_eq!(t.lock_count(), 0);
}

#[test]
fn a_force_released_hold_with_a_lock_delay_delays_the_lock_like_an_expiry() {
    let mut t = LockTable::new();
    token_of(&mut t, Acquire { lock_delay_ms: 5_000, ..exclusive("db", "old") });
    token_of(&mut t, exclusive("db", "next"));
    let (result, events) = apply(&mut t, force("db", "old"));
    assert!(matches!(result, CommandResult::ForceRelease { ref granted, .. } if granted.is_empty()));
    assert!(events.contains(&Event::Delayed { name: "db".into(), delay_ms: 5_000 }));
    assert_eq!(ids(&t, "db"), (vec![], vec!["next".into()]));
    apply(&mut t, Command::EndDelay { name: "db".into() });
    assert_eq!(ids(&t, "db").0, ["next"]);
}

#[test]
fn by_default_the_lock_waits_out_the_released_holds_ttl_before_the_next_grant() {
    // The old holder's renewal may have been acknowledged just before: its client learns of
    // the loss at its next renewal (or by its own clock), within the TTL, before the next grant.
    let mut t = LockTable::new();
    token_of(&mut t, Acquire { ttl_ms: 20_000, lock_delay_ms: 1_000, ..exclusive("db", "old") });
    token_of(&mut t, exclusive("db", "next"));
    let safe =
        Command::ForceRelease { name: "db".into(), target: ForceTarget::Request("old".into()), immediate: false };
    let (result, events) = apply(&mut t, safe);
    assert!(
        matches!(result, CommandResult::ForceRelease { ref released, ref granted } if released.len() == 1 && granted.is_empty())
    );
    assert!(events.contains(&Event::Delayed { name: "db".into(), delay_ms: 20_000 }), "{events:?}");
    assert!(matches!(t.request("old"), Some(RequestState::Finished(_))), "renewals of the old hold fail at once");
    assert_eq!(ids(&t, "db"), (vec![], vec!["next".into()]));
    apply(&mut t, Command::EndDelay { name: "db".into() });
    assert_eq!(ids(&t, "db").0, ["next"]);
}
