//! Bad input against a real node: garbage and truncated HTTP/2 and gRPC frames, hand-encoded
//! protobuf (invalid UTF-8, broken wire format), messages at and past the size limit, and every
//! request field at and past its limit. Each case gets a clear answer (or a closed connection)
//! within a bounded time, never a panic or a hang, and changes nothing; the node keeps serving.
//!
//! The field cases already covered by `lock_semantics.rs` (Acquire's name/owner/request_id/ttl/
//! wait/lock_delay/limit/mode past their limits, KV key 1025 and value 65537) are not repeated.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::frames::*;
use common::*;
use tenure_proto::v1 as pb;
use tonic::transport::Channel;
use tonic::{Code, Status};

type Locks = pb::locks_client::LocksClient<Channel>;
type Kv = pb::kv_client::KvClient<Channel>;

const HOUR_MS: u64 = 3_600_000;
const ACQUIRE: &str = "/tenure.v1.Locks/Acquire";
/// tonic's default limit on a decoded request (the public services do not change it).
const MAX_DECODE: usize = 4 * 1024 * 1024;
/// How long any single bad-input case may take to be answered.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// The node's `--max-wait-ms`.
const MAX_WAIT: Duration = Duration::from_millis(500);

static PROBES: AtomicU64 = AtomicU64::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_answer_and_changes_nothing() {
    // A short server cap on waiting, so that a wait_ms above it can be seen to be capped.
    let cluster = Cluster::start(1, &["--max-wait-ms", &MAX_WAIT.as_millis().to_string()]).await;
    let mut c = cluster.locks(1).await;
    // A hold that everything below must leave exactly as it is.
    let sentinel = c.acquire(acquire_req("sentinel", "sentinel-1", HOUR_MS, 0)).await.unwrap().into_inner();
    let sentinel = sentinel.lease.expect("the sentinel is granted").token;
    let node = Node1 { cluster: &cluster, sentinel };

    garbage_and_broken_http2_close_the_connection(&node).await;
    broken_grpc_framing_gets_a_grpc_status(&node).await;
    a_stalled_request_does_not_block_other_clients(&node).await;
    invalid_utf8_in_any_string_field_is_refused_naming_the_field(&node).await;
    broken_protobuf_is_refused_naming_the_problem(&node).await;
    a_message_at_the_size_limit_is_decoded_and_one_byte_more_is_refused(&node).await;
    fields_past_their_limit_are_refused_naming_field_and_limit(&node).await;
    an_unknown_consistency_is_refused(&node).await;
    fields_at_their_limit_are_accepted_and_round_trip(&node).await;
    kv_list_pages_of_maximum_values_fit_a_default_client(&node).await;
    watch_resume_over_large_grants_fits_a_default_client(&node).await;

    node.still_serves().await;
    let log = cluster.log_of(1);
    assert!(!log.contains("panicked"), "the node panicked:\n{log}");
}

/// The node under test and the sentinel hold it must keep.
struct Node1<'a> {
    cluster: &'a Cluster,
    sentinel: u64,
}

impl Node1<'_> {
    fn addr(&self) -> String {
        self.cluster.addr(1)
    }

    async fn channel(&self) -> Channel {
        self.cluster.channel(1).await
    }

    async fn locks(&self) -> Locks {
        self.cluster.locks(1).await
    }

    async fn kv(&self) -> Kv {
        self.cluster.kv(1).await
    }

    /// Runs `f` and asserts the log did not grow while it ran.
    async fn changes_nothing<F: Future>(&self, what: &str, f: F) -> F::Output {
        let before = self.cluster.last_log_index(1).await;
        let out = f.await;
        assert_eq!(self.cluster.last_log_index(1).await, before, "{what} wrote to the log");
        out
    }

    /// The node answers a normal client, and the sentinel is held with its original token.
    async fn still_serves(&self) {
        let mut c = self.locks().await;
        let d = c.describe(pb::DescribeRequest { name: "sentinel".into(), consistency: 0 }).await.unwrap();
        let tokens: Vec<u64> = d.into_inner().holders.iter().map(|h| h.token).collect();
        assert_eq!(tokens, vec![self.sentinel], "the sentinel hold changed");
        let rid = format!("probe-{}", PROBES.fetch_add(1, Ordering::Relaxed));
        let r = c.acquire(acquire_req("probe", &rid, HOUR_MS, 0)).await.unwrap().into_inner();
        assert_eq!(outcome(&r), pb::AcquireOutcome::Granted, "a normal acquire after bad input");
        let rel = c.release(pb::ReleaseRequest { name: "probe".into(), request_id: rid }).await;
        assert!(rel.unwrap().into_inner().was_held);
    }

    /// Sends `bytes` on a fresh connection (optionally closing our side), reads the answer,
    /// and checks that nothing was written.
    async fn raw(&self, what: &str, bytes: Vec<u8>, close_write: bool) -> Answer {
        self.changes_nothing(what, self.raw_answer(what, bytes, close_write)).await
    }

    async fn raw_answer(&self, what: &str, bytes: Vec<u8>, close_write: bool) -> Answer {
        let mut conn = RawConn::connect(&self.addr()).await;
        let _ = conn.send(&bytes).await;
        if close_write {
            conn.close_write().await;
        }
        let a = conn.answer(ANSWER_WITHIN).await;
        println!("{what}: {}", a.summary());
        a
    }
}

/// Deterministic noise.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

fn with_start(rest: &[Vec<u8>]) -> Vec<u8> {
    let mut out = client_start();
    for r in rest {
        out.extend_from_slice(r);
    }
    out
}

/// HTTP/2 error codes (RFC 9113 §7).
const PROTOCOL_ERROR: u32 = 0x1;
const FRAME_SIZE_ERROR: u32 = 0x6;
const COMPRESSION_ERROR: u32 = 0x9;

async fn garbage_and_broken_http2_close_the_connection(node: &Node1<'_>) {
    // Noise instead of a preface: the connection is dropped.
    let a = node.raw("4 KiB of noise", noise(4096, 7), false).await;
    assert!(a.closed || a.goaway.is_some(), "{}", a.summary());

    // HTTP/1.1 to the HTTP/2-only port: dropped.
    let a = node.raw("an HTTP/1.1 request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), false).await;
    assert!(a.closed || a.goaway.is_some(), "{}", a.summary());

    // A valid preface followed by noise: GOAWAY with a protocol-level error.
    let a = node.raw("preface then noise", with_start(&[noise(512, 11)]), false).await;
    let code = a.goaway.as_ref().map(|g| g.0);
    assert!(matches!(code, Some(PROTOCOL_ERROR | FRAME_SIZE_ERROR)) || a.closed, "{}", a.summary());

    // A frame header that promises 100 bytes, 10 sent, then EOF: the connection is closed.
    let mut truncated = frame(HEADERS, END_HEADERS, 1, &[0u8; 100]);
    truncated.truncate(9 + 10);
    let a = node.raw("a truncated frame, then EOF", with_start(&[truncated]), true).await;
    assert!(a.closed || a.goaway.is_some(), "{}", a.summary());

    // A frame larger than the peer's SETTINGS_MAX_FRAME_SIZE (16384 by default).
    let big = frame(DATA, 0, 1, &vec![0u8; 20_000]);
    let a = node.raw("a 20000-byte frame", with_start(&[big]), false).await;
    assert!(a.goaway.as_ref().is_some_and(|g| g.0 == FRAME_SIZE_ERROR) || a.closed, "{}", a.summary());

    // A header block that refers to a table entry that does not exist.
    let bad_hpack = frame(HEADERS, END_HEADERS | END_STREAM, 1, &[0xff, 0x7f]);
    let a = node.raw("HPACK index 254", with_start(&[bad_hpack]), false).await;
    let code = a.goaway.as_ref().map(|g| g.0);
    assert!(matches!(code, Some(PROTOCOL_ERROR | COMPRESSION_ERROR)) || a.closed, "{}", a.summary());

    // Many at once.
    let tasks: Vec<_> = (0..32u64)
        .map(|i| {
            let addr = node.addr();
            tokio::spawn(async move {
                let mut conn = RawConn::connect(&addr).await;
                let _ = conn.send(&noise(1024, i + 100)).await;
                conn.answer(ANSWER_WITHIN).await
            })
        })
        .collect();
    for t in tasks {
        let a = t.await.unwrap();
        assert!(a.closed || a.goaway.is_some(), "{}", a.summary());
    }
    node.still_serves().await;
}

/// A gRPC call to Acquire on stream 1 with the given DATA payload and extra headers.
fn acquire_call(authority: &str, extra: &[(&str, &str)], data: &[u8], end: bool) -> Vec<u8> {
    let flags = if end { END_STREAM } else { 0 };
    with_start(&[grpc_headers_frame(authority, ACQUIRE, extra), frame(DATA, flags, 1, data)])
}

/// A well-formed AcquireRequest for `name`.
fn acquire_bytes(name: &str, request_id: &str) -> Vec<u8> {
    prost::Message::encode_to_vec(&acquire_req(name, request_id, HOUR_MS, 0))
}

fn assert_grpc(a: &Answer, code: Code, says: &[&str]) {
    assert_eq!(a.grpc_status(), Some(code as i32), "{}", a.summary());
    let message = a.grpc_message();
    for s in says {
        assert!(message.contains(s), "grpc-message should say {s:?}: {}", a.summary());
    }
}

async fn broken_grpc_framing_gets_a_grpc_status(node: &Node1<'_>) {
    let host = node.addr();
    let valid = acquire_bytes("raw", "raw-1");

    // The length prefix promises 1000 bytes; 10 come, then END_STREAM.
    let mut short = grpc_prefix(0, 1000);
    short.extend_from_slice(&valid[..10]);
    let a = node.raw("a length prefix longer than the body", acquire_call(&host, &[], &short, true), false).await;
    assert_grpc(&a, Code::Internal, &["EOF"]);

    // The same, then the client closes the connection without ending the stream.
    let a = node.raw("a length prefix longer than the body, then EOF", acquire_call(&host, &[], &short, false), true);
    let a = a.await;
    assert!(a.closed || a.goaway.is_some() || a.reset.is_some() || a.ended, "{}", a.summary());

    let bad_body = grpc_message(0, &[0x0a, 0x10, b'a']);
    let a = node.raw("a protobuf body that ends inside a field", acquire_call(&host, &[], &bad_body, true), false);
    assert_grpc(&a.await, Code::Internal, &["failed to decode Protobuf message", "AcquireRequest.name"]);

    let compressed = grpc_message(1, &valid);
    let a = node.raw("compressed flag, no grpc-encoding", acquire_call(&host, &[], &compressed, true), false);
    assert_grpc(&a.await, Code::Internal, &["compressed-flag but no grpc-encoding"]);

    let gzip = [("grpc-encoding", "gzip")];
    let a = node.raw("compressed flag, grpc-encoding gzip", acquire_call(&host, &gzip, &compressed, true), false);
    assert_grpc(&a.await, Code::Unimplemented, &["gzip"]);

    let a = node.raw("compressed flag 2", acquire_call(&host, &[], &grpc_message(2, &valid), true), false);
    assert_grpc(&a.await, Code::Internal, &["invalid compression flag: 2"]);

    let mut huge = grpc_prefix(0, u32::MAX);
    huge.extend_from_slice(&valid);
    let a = node.raw("a length prefix of 4 GiB", acquire_call(&host, &[], &huge, true), false).await;
    assert_grpc(&a, Code::OutOfRange, &["found 4294967295 bytes", "the limit is: 4194304 bytes"]);

    let a = node.raw("no message at all", acquire_call(&host, &[], &[], true), false).await;
    assert_grpc(&a, Code::Internal, &["Missing request message"]);

    // Two messages to a unary method: tonic serves the first and drops the second.
    let mut two = grpc_message(0, &acquire_bytes("two-a", "two-a"));
    two.extend(grpc_message(0, &acquire_bytes("two-b", "two-b")));
    let a = node.raw_answer("two messages to a unary method", acquire_call(&host, &[], &two, true), false).await;
    assert_eq!(a.grpc_status(), Some(0), "{}", a.summary());
    let mut c = node.locks().await;
    assert_eq!(holders_and_waiters(&mut c, "two-a").await.0, vec!["two-a".to_string()]);
    assert_eq!(holders_and_waiters(&mut c, "two-b").await, (vec![], vec![]), "the second message is not served");
    c.release(pb::ReleaseRequest { name: "two-a".into(), request_id: "two-a".into() }).await.unwrap();

    let unknown = with_start(&[
        grpc_headers_frame(&host, "/tenure.v1.Locks/Steal", &[]),
        frame(DATA, END_STREAM, 1, &grpc_message(0, &valid)),
    ]);
    let a = node.raw("an unknown method", unknown, false).await;
    assert_eq!(a.grpc_status(), Some(Code::Unimplemented as i32), "{}", a.summary());

    // JSON sent to the gRPC port. tonic does not look at the content-type; the body's first
    // byte is read as a compression flag.
    let json = [("content-type", "application/json")];
    let body = br#"{"name":"raw","request_id":"raw-1","ttl_ms":1000}"#;
    let a = node.raw("a JSON body", acquire_call(&host, &json, body, true), false).await;
    assert_grpc(&a, Code::Internal, &["invalid compression flag: 123"]);

    let d = node.locks().await.describe(pb::DescribeRequest { name: "raw".into(), consistency: 0 }).await;
    assert!(!d.unwrap().into_inner().exists, "no raw call took the lock");
    node.still_serves().await;
}

async fn a_stalled_request_does_not_block_other_clients(node: &Node1<'_>) {
    let mut stalled = RawConn::connect(&node.addr()).await;
    let mut short = grpc_prefix(0, 1000);
    short.extend_from_slice(&[0x0a, 0x03]);
    stalled.send(&acquire_call(&node.addr(), &[], &short, false)).await.unwrap();
    node.still_serves().await;
    drop(stalled);
    node.still_serves().await;
}

/// Expects INTERNAL (a request that does not decode) naming the message field and UTF-8.
fn assert_not_utf8(r: Result<impl std::fmt::Debug, Status>, field: &str) {
    let st = r.expect_err(field);
    println!("invalid UTF-8 in {field}: {:?} {:?}", st.code(), st.message());
    assert_eq!(st.code(), Code::Internal, "{field}: {st:?}");
    assert!(st.message().contains(field) && st.message().contains("not UTF-8"), "{field}: {}", st.message());
}

async fn invalid_utf8_in_any_string_field_is_refused_naming_the_field(node: &Node1<'_>) {
    let ch = node.channel().await;
    let ok = |tag: u32, v: &[u8]| pb_bytes(tag, v);
    let bad = NOT_UTF8;
    let ttl = pb_varint(4, HOUR_MS);
    let cat = |parts: &[Vec<u8>]| parts.concat();
    node.changes_nothing("invalid UTF-8", async {
        let acquire = [
            (cat(&[ok(1, bad), ok(3, b"u-1"), ttl.clone()]), "AcquireRequest.name"),
            (cat(&[ok(1, b"u"), ok(2, bad), ok(3, b"u-1"), ttl.clone()]), "AcquireRequest.owner"),
            (cat(&[ok(1, b"u"), ok(3, bad), ttl.clone()]), "AcquireRequest.request_id"),
        ];
        for (body, field) in acquire {
            assert_not_utf8(raw_unary(ch.clone(), ACQUIRE, body).await, field);
        }
        let pairs = [("/tenure.v1.Locks/Renew", "RenewRequest"), ("/tenure.v1.Locks/Release", "ReleaseRequest")];
        for (method, message) in pairs {
            let body = cat(&[ok(1, bad), ok(2, b"u-1")]);
            assert_not_utf8(raw_unary(ch.clone(), method, body).await, &format!("{message}.name"));
            let body = cat(&[ok(1, b"u"), ok(2, bad)]);
            assert_not_utf8(raw_unary(ch.clone(), method, body).await, &format!("{message}.request_id"));
        }
        let describe = raw_unary(ch.clone(), "/tenure.v1.Locks/Describe", ok(1, bad)).await;
        assert_not_utf8(describe, "DescribeRequest.name");
        let fence = raw_unary(ch.clone(), "/tenure.v1.Locks/ValidateFence", ok(1, bad)).await;
        assert_not_utf8(fence, "ValidateFenceRequest.name");
        let list = raw_unary(ch.clone(), "/tenure.v1.Locks/List", ok(1, bad)).await;
        assert_not_utf8(list, "ListLocksRequest.prefix");
        let list = raw_unary(ch.clone(), "/tenure.v1.Locks/List", ok(3, bad)).await;
        assert_not_utf8(list, "ListLocksRequest.page_token");
        let watch = raw_server_streaming_first(ch.clone(), "/tenure.v1.Locks/Watch", ok(1, bad)).await;
        assert_not_utf8(watch, "WatchRequest.selector");
        let watch = raw_server_streaming_first(ch.clone(), "/tenure.v1.Locks/Watch", ok(2, bad)).await;
        assert_not_utf8(watch, "WatchRequest.selector");
        // KeepAlive decodes its messages inside the handler, so the error ends the stream.
        let lease = ok(2, &cat(&[ok(1, bad), ok(2, b"u-1")]));
        let ka = raw_bidi_first(ch.clone(), "/tenure.v1.Locks/KeepAlive", cat(&[pb_varint(1, 1), lease])).await;
        assert_not_utf8(ka, "LeaseRef.name");
        // A fence inside a KV write.
        let fenced = |key_tag: u32, fence_tag: u32| cat(&[ok(key_tag, b"k"), ok(fence_tag, &ok(1, bad))]);
        assert_not_utf8(raw_unary(ch.clone(), "/tenure.v1.KV/Put", fenced(1, 3)).await, "Fence.name");
        assert_not_utf8(raw_unary(ch.clone(), "/tenure.v1.KV/Delete", fenced(1, 2)).await, "Fence.name");
    })
    .await;
    node.still_serves().await;
}

async fn broken_protobuf_is_refused_naming_the_problem(node: &Node1<'_>) {
    let ch = node.channel().await;
    let valid = acquire_bytes("pb", "pb-1");
    let mut overlong_varint = vec![0x20];
    overlong_varint.extend([0xff; 11]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a string field sent as a varint", pb_varint(1, 5), "invalid wire type"),
        ("a length past the end", vec![0x0a, 0x10, b'a'], "buffer underflow"),
        ("an 11-byte varint", overlong_varint, "invalid varint"),
        ("field number 0", vec![0x00, 0x00], "invalid tag value: 0"),
        ("an end-group with no start", vec![0xa4, 0x01], "unexpected end group tag"),
        ("a valid message cut short", valid[..valid.len() - 3].to_vec(), "failed to decode"),
    ];
    node.changes_nothing("broken protobuf", async {
        for (what, body, says) in cases {
            let st = raw_unary(ch.clone(), ACQUIRE, body).await.expect_err(what);
            println!("{what}: {:?} {:?}", st.code(), st.message());
            assert_eq!(st.code(), Code::Internal, "{what}: {st:?}");
            assert!(st.message().contains(says), "{what} should say {says:?}: {}", st.message());
        }
        // An enum sent as a 10-byte varint decodes to -1, and is refused by validation.
        let body = [acquire_bytes("pb", "pb-2"), pb_varint(6, u64::MAX)].concat();
        let st = raw_unary(ch.clone(), ACQUIRE, body).await.unwrap_err();
        println!("mode = u64::MAX varint: {:?} {:?}", st.code(), st.message());
        assert_eq!((st.code(), detail(&st).field.as_str()), (Code::InvalidArgument, "mode"));
        assert!(st.message().contains("-1"), "{}", st.message());
    })
    .await;
    node.still_serves().await;
}

async fn a_message_at_the_size_limit_is_decoded_and_one_byte_more_is_refused(node: &Node1<'_>) {
    let ch = node.channel().await;
    let head = [pb_bytes(1, b"size"), pb_bytes(3, b"size-1"), pb_varint(4, HOUR_MS)].concat();
    // owner = 2 + len-of-len + n bytes; pick n so the message is exactly MAX_DECODE bytes.
    let owner_len = |total: usize| total - head.len() - 1 - prost::encoding::encoded_len_varint(total as u64);
    let at_limit = [head.clone(), pb_bytes(2, &vec![b'o'; owner_len(MAX_DECODE)])].concat();
    let over = [head.clone(), pb_bytes(2, &vec![b'o'; owner_len(MAX_DECODE) + 1])].concat();
    assert_eq!((at_limit.len(), over.len()), (MAX_DECODE, MAX_DECODE + 1));
    node.changes_nothing("messages at and past the size limit", async {
        let st = raw_unary(ch.clone(), ACQUIRE, at_limit).await.unwrap_err();
        println!("a {MAX_DECODE}-byte Acquire: {:?} {:?}", st.code(), &st.message()[..st.message().len().min(200)]);
        assert_eq!(
            (st.code(), detail(&st).field.as_str()),
            (Code::InvalidArgument, "owner"),
            "decoded, then validated"
        );
        assert!(st.message().contains("256"), "{}", st.message());
        let st = raw_unary(ch.clone(), ACQUIRE, over).await.unwrap_err();
        println!("a {}-byte Acquire: {:?} {:?}", MAX_DECODE + 1, st.code(), st.message());
        assert_eq!(st.code(), Code::OutOfRange);
        assert!(st.message().contains("found 4194305 bytes, the limit is: 4194304 bytes"), "{}", st.message());
    })
    .await;
    node.still_serves().await;
}

/// Expects INVALID_ARGUMENT with ErrorDetail naming `field`, and a message naming each of `says`.
fn assert_refused<T: std::fmt::Debug>(r: Result<T, Status>, field: &str, says: &[&str]) {
    let st = r.expect_err(field);
    let d = detail(&st);
    println!("{field}: {:?} {:?}", st.code(), st.message());
    assert_eq!(
        (st.code(), d.code.as_str(), d.field.as_str()),
        (Code::InvalidArgument, "INVALID_ARGUMENT", field),
        "{}",
        st.message()
    );
    for s in says {
        assert!(st.message().contains(s), "the message for {field} should name {s:?}: {}", st.message());
    }
}

fn long(n: usize) -> String {
    "x".repeat(n)
}

async fn fields_past_their_limit_are_refused_naming_field_and_limit(node: &Node1<'_>) {
    let mut c = node.locks().await;
    let mut kv = node.kv().await;
    let ok = acquire_req("limits", "limits-1", HOUR_MS, 0);
    let max_name_with_nul = format!("{}\0", long(511));
    node.changes_nothing("fields past their limit", async {
        // Acquire, beyond what lock_semantics.rs covers. Lengths are bytes, not characters.
        let acquire = [
            (pb::AcquireRequest { ttl_ms: HOUR_MS + 1, ..ok.clone() }, "ttl_ms", vec!["3600000", "3600001"]),
            (pb::AcquireRequest { wait_ms: 86_400_001, ..ok.clone() }, "wait_ms", vec!["86400000"]),
            (pb::AcquireRequest { lock_delay_ms: u64::MAX, ..ok.clone() }, "lock_delay_ms", vec!["60000"]),
            (pb::AcquireRequest { owner: "é".repeat(129), ..ok.clone() }, "owner", vec!["256", "258 bytes"]),
            (pb::AcquireRequest { name: "é".repeat(257), ..ok.clone() }, "name", vec!["512", "514 bytes"]),
            (pb::AcquireRequest { name: max_name_with_nul.clone(), ..ok.clone() }, "name", vec!["NUL"]),
            (pb::AcquireRequest { mode: -1, ..ok.clone() }, "mode", vec!["-1"]),
        ];
        for (req, field, says) in acquire {
            assert_refused(c.acquire(req).await, field, &says);
        }
        // Release and Renew check name and request_id before anything else.
        for (name, rid, field, says) in [
            (String::new(), "r".to_string(), "name", "512"),
            (long(513), "r".to_string(), "name", "513 bytes"),
            ("a\0b".to_string(), "r".to_string(), "name", "NUL"),
            ("n".to_string(), String::new(), "request_id", "64"),
            ("n".to_string(), long(65), "request_id", "65 bytes"),
        ] {
            let rel = pb::ReleaseRequest { name: name.clone(), request_id: rid.clone() };
            assert_refused(c.release(rel).await, field, &[says]);
            assert_refused(c.renew(pb::RenewRequest { name, request_id: rid }).await, field, &[says]);
        }
        for name in [String::new(), long(513), "a\0b".to_string()] {
            let d = pb::DescribeRequest { name: name.clone(), consistency: 0 };
            assert_refused(c.describe(d).await, "name", &["512"]);
            let f = pb::ValidateFenceRequest { name, token: 1, consistency: 0 };
            assert_refused(c.validate_fence(f).await, "name", &["512"]);
        }
        let list = |prefix: String, page_size: u32| pb::ListLocksRequest { prefix, page_size, ..Default::default() };
        assert_refused(c.list(list(long(513), 0)).await, "prefix", &["512"]);
        assert_refused(c.list(list(String::new(), 1001)).await, "page_size", &["1000", "1001"]);
        assert_refused(c.list(list(String::new(), u32::MAX)).await, "page_size", &["1000", "4294967295"]);

        // KeepAlive refuses the whole batch, renewing nothing, when one lease is malformed.
        let leases = vec![
            pb::LeaseRef { name: "sentinel".into(), request_id: "sentinel-1".into() },
            pb::LeaseRef { name: long(513), request_id: "r".into() },
        ];
        let mut replies =
            c.keep_alive(tokio_stream::iter(vec![pb::KeepAliveRequest { seq: 9, leases }])).await.unwrap().into_inner();
        let reply = replies.message().await.unwrap().expect("a reply");
        let err = reply.error.clone().expect("an error in the reply");
        println!("KeepAlive with a 513-byte name: {err:?}");
        assert_eq!((reply.seq, err.code.as_str(), err.field.as_str()), (9, "INVALID_ARGUMENT", "name"));
        assert!(err.message.contains("512"), "{}", err.message);
        assert!(reply.alive.is_empty() && reply.lost.is_empty(), "nothing renewed: {reply:?}");

        // KV.
        let fence = |name: String| Some(pb::Fence { name, token: 1 });
        let put = |key: Vec<u8>, if_fence| pb::PutRequest { key, value: b"v".to_vec(), if_fence };
        assert_refused(kv.put(put(vec![], None)).await, "key", &["1024", "0 bytes"]);
        assert_refused(kv.put(put(b"k".to_vec(), fence(String::new()))).await, "if_fence.name", &["512"]);
        assert_refused(kv.put(put(b"k".to_vec(), fence(long(513)))).await, "if_fence.name", &["513 bytes"]);
        for key in [vec![], vec![b'k'; 1025]] {
            assert_refused(kv.get(pb::GetRequest { key: key.clone(), consistency: 0 }).await, "key", &["1024"]);
            let del = pb::DeleteRequest { key, if_fence: None };
            assert_refused(kv.delete(del).await, "key", &["1024"]);
        }
        let del = pb::DeleteRequest { key: b"k".to_vec(), if_fence: fence("a\0".into()) };
        assert_refused(kv.delete(del).await, "if_fence.name", &["NUL"]);
        let klist = |prefix: Vec<u8>, page_size: u32| pb::ListKeysRequest { prefix, page_size, ..Default::default() };
        assert_refused(kv.list(klist(vec![b'k'; 1025], 0)).await, "prefix", &["1024"]);
        assert_refused(kv.list(klist(vec![], 1001)).await, "page_size", &["1000"]);

        // Watch.
        use pb::watch_request::Selector;
        let watch = |selector, start_index| pb::WatchRequest { selector, start_index };
        assert_refused(c.watch(watch(None, 0)).await, "selector", &["name or prefix"]);
        assert_refused(c.watch(watch(Some(Selector::Name(String::new())), 0)).await, "name", &["512"]);
        assert_refused(c.watch(watch(Some(Selector::Name(long(513))), 0)).await, "name", &["512"]);
        assert_refused(c.watch(watch(Some(Selector::Prefix(long(513))), 0)).await, "prefix", &["512"]);
    })
    .await;
    node.still_serves().await;
}

async fn an_unknown_consistency_is_refused(node: &Node1<'_>) {
    let mut c = node.locks().await;
    let mut kv = node.kv().await;
    node.changes_nothing("an unknown consistency", async {
        let says = ["LINEARIZABLE", "STALE", "7"];
        let d = pb::DescribeRequest { name: "sentinel".into(), consistency: 7 };
        assert_refused(c.describe(d).await, "consistency", &says);
        let l = pb::ListLocksRequest { consistency: 7, ..Default::default() };
        assert_refused(c.list(l).await, "consistency", &says);
        let f = pb::ValidateFenceRequest { name: "sentinel".into(), token: node.sentinel, consistency: 7 };
        assert_refused(c.validate_fence(f).await, "consistency", &says);
        assert_refused(kv.get(pb::GetRequest { key: b"k".to_vec(), consistency: 7 }).await, "consistency", &says);
        let l = pb::ListKeysRequest { consistency: -1, ..Default::default() };
        assert_refused(kv.list(l).await, "consistency", &["-1"]);
    })
    .await;
}

async fn fields_at_their_limit_are_accepted_and_round_trip(node: &Node1<'_>) {
    let mut c = node.locks().await;
    let name = long(512);
    let rid = "r".repeat(64);
    // 512 bytes of four-byte characters, 256 bytes of two-byte ones: lengths are bytes.
    let wide_name = "𝄞".repeat(128);
    let wide_owner = "é".repeat(128);
    let granted = |r: Result<tonic::Response<pb::AcquireResponse>, Status>, what: &str| {
        let r = r.unwrap_or_else(|e| panic!("{what}: {e:?}")).into_inner();
        assert_eq!(outcome(&r), pb::AcquireOutcome::Granted, "{what}");
        r.lease.unwrap()
    };
    let max = pb::AcquireRequest {
        name: name.clone(),
        owner: wide_owner.clone(),
        request_id: rid.clone(),
        ttl_ms: HOUR_MS,
        wait_ms: 86_400_000,
        lock_delay_ms: 60_000,
        ..Default::default()
    };
    let lease = granted(c.acquire(max.clone()).await, "every Acquire field at its limit");
    assert_eq!(
        (lease.name.as_str(), lease.owner.as_str(), lease.ttl_ms),
        (name.as_str(), wide_owner.as_str(), HOUR_MS)
    );
    // The same request again is a renewal that returns the same lease.
    assert_eq!(granted(c.acquire(max).await, "the same request again").token, lease.token);

    let renewed = c.renew(pb::RenewRequest { name: name.clone(), request_id: rid.clone() }).await.unwrap();
    assert_eq!(renewed.into_inner().ttl_ms, HOUR_MS);
    let lease_ref = pb::LeaseRef { name: name.clone(), request_id: rid.clone() };
    let mut ka = c
        .keep_alive(tokio_stream::iter(vec![pb::KeepAliveRequest { seq: 1, leases: vec![lease_ref.clone()] }]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ka.message().await.unwrap().unwrap().alive, vec![lease_ref]);

    let d = c.describe(pb::DescribeRequest { name: name.clone(), consistency: 1 }).await.unwrap().into_inner();
    assert_eq!(d.holders.iter().map(|h| h.token).collect::<Vec<_>>(), vec![lease.token]);
    let f = |token| pb::ValidateFenceRequest { name: name.clone(), token, consistency: 0 };
    assert!(c.validate_fence(f(lease.token)).await.unwrap().into_inner().current);
    for token in [0, u64::MAX] {
        let v = c.validate_fence(f(token)).await.unwrap().into_inner();
        assert_eq!((v.current, v.current_tokens), (false, vec![lease.token]), "token {token}");
    }
    let l = pb::ListLocksRequest { prefix: name.clone(), page_size: 1000, ..Default::default() };
    let l = c.list(l).await.unwrap().into_inner();
    assert_eq!((l.locks.len(), l.locks[0].name.as_str(), l.next_page_token.as_str()), (1, name.as_str(), ""));
    // A page token past every name ends the listing; one before the prefix starts at the prefix.
    let l = pb::ListLocksRequest { page_token: "\u{10ffff}".into(), ..Default::default() };
    assert!(c.list(l).await.unwrap().into_inner().locks.is_empty());
    let l = pb::ListLocksRequest { prefix: "sentinel".into(), page_token: "a".into(), ..Default::default() };
    assert_eq!(c.list(l).await.unwrap().into_inner().locks.len(), 1);

    let watch = |selector| pb::WatchRequest { selector: Some(selector), start_index: 0 };
    use pb::watch_request::Selector;
    c.watch(watch(Selector::Name(name.clone()))).await.expect("watch a 512-byte name");
    c.watch(watch(Selector::Prefix(name.clone()))).await.expect("watch a 512-byte prefix");
    // A start index far in the future is accepted: nothing to report yet, only progress (whose
    // applied_index is then the start index - 1, not the node's applied index).
    let future = pb::WatchRequest { selector: Some(Selector::Prefix(String::new())), start_index: u64::MAX };
    let mut w = c.watch(future).await.expect("watch from u64::MAX").into_inner();
    let progress = tokio::time::timeout(ANSWER_WITHIN, w.message()).await.expect("a progress message in time");
    let progress = progress.unwrap().expect("the stream stays open");
    println!("watch from u64::MAX: first message {progress:?}");
    assert!(progress.events.is_empty());
    drop(w);

    let rel = c.release(pb::ReleaseRequest { name: name.clone(), request_id: rid.clone() }).await.unwrap();
    assert!(rel.into_inner().was_held, "released cleanly, so no lock-delay");
    assert!(!c.describe(pb::DescribeRequest { name: name.clone(), consistency: 0 }).await.unwrap().into_inner().exists);

    let wide = pb::AcquireRequest { name: wide_name.clone(), ..acquire_req("", "wide-1", 1_000, 0) };
    let lease = granted(c.acquire(wide).await, "a 512-byte name of 128 characters and the shortest ttl");
    assert_eq!((lease.name, lease.ttl_ms), (wide_name.clone(), 1_000));
    c.release(pb::ReleaseRequest { name: wide_name, request_id: "wide-1".into() }).await.unwrap();

    // A wait_ms above the node's cap is not refused: the call is held for the cap, then answers
    // QUEUED, and the request keeps its place until it gives up.
    let started = Instant::now();
    let r = c.acquire(acquire_req("sentinel", "capped-wait", HOUR_MS, 86_400_000)).await.unwrap().into_inner();
    let held = started.elapsed();
    println!("wait_ms 86400000 on a held lock with --max-wait-ms 500: {:?} after {held:?}", outcome(&r));
    assert_eq!((outcome(&r), r.position), (pb::AcquireOutcome::Queued, 1));
    assert!(held >= MAX_WAIT && held < ANSWER_WITHIN, "held for {held:?}");
    let rel = c.release(pb::ReleaseRequest { name: "sentinel".into(), request_id: "capped-wait".into() }).await;
    assert!(rel.unwrap().into_inner().was_queued);

    let no_owner = pb::AcquireRequest { owner: String::new(), ..acquire_req("no-owner", "no-owner-1", HOUR_MS, 0) };
    assert_eq!(granted(c.acquire(no_owner).await, "an empty owner").owner, "");
    let semaphore = shared_req("widest", "widest-1", u32::MAX, 0);
    granted(c.acquire(semaphore).await, "a SHARED limit of u32::MAX");
    let d = c.describe(pb::DescribeRequest { name: "widest".into(), consistency: 0 }).await.unwrap().into_inner();
    assert_eq!(d.limit, u32::MAX);
    for (n, r) in [("no-owner", "no-owner-1"), ("widest", "widest-1")] {
        c.release(pb::ReleaseRequest { name: n.into(), request_id: r.into() }).await.unwrap();
    }
    // Release of a name and request id at their limits that were never seen leaves a tombstone.
    let rel = c.release(pb::ReleaseRequest { name: long(512), request_id: "t".repeat(64) }).await.unwrap();
    assert!(!rel.into_inner().was_held);

    // KV: the largest key and value round-trip byte for byte; an empty value is a value.
    let mut kv = node.kv().await;
    let key: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
    let value: Vec<u8> = (0..65_536u32).map(|i| (i % 253) as u8).collect();
    kv.put(pb::PutRequest { key: key.clone(), value: value.clone(), if_fence: None }).await.unwrap();
    let got = kv.get(pb::GetRequest { key: key.clone(), consistency: 0 }).await.unwrap().into_inner();
    assert!(got.found && got.value == value, "the 64 KiB value came back changed");
    let listed = kv.list(pb::ListKeysRequest { prefix: key.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(listed.into_inner().items.iter().map(|i| &i.key).collect::<Vec<_>>(), vec![&key]);
    assert!(kv.delete(pb::DeleteRequest { key: key.clone(), if_fence: None }).await.unwrap().into_inner().existed);
    kv.put(pb::PutRequest { key: b"empty".to_vec(), value: vec![], if_fence: None }).await.unwrap();
    let got = kv.get(pb::GetRequest { key: b"empty".to_vec(), consistency: 0 }).await.unwrap().into_inner();
    assert!(got.found && got.value.is_empty());
    node.still_serves().await;
}

async fn kv_list_pages_of_maximum_values_fit_a_default_client(node: &Node1<'_>) {
    let mut kv = node.kv().await;
    // 70 values of 64 KiB: 4.5 MiB, more than a default client accepts in one message.
    let n = 70u8;
    for i in 0..n {
        let put = pb::PutRequest { key: vec![b'b', b'/', i], value: vec![i; 65_536], if_fence: None };
        kv.put(put).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut token = Vec::new();
    for page in 0.. {
        assert!(page < 100, "too many pages");
        let req = pb::ListKeysRequest { prefix: b"b/".to_vec(), page_size: 1000, page_token: token, consistency: 0 };
        let r = kv.list(req).await.unwrap_or_else(|e| panic!("KV List page {page}: {:?} {}", e.code(), e.message()));
        let r = r.into_inner();
        for item in r.items {
            assert_eq!(item.value, vec![item.key[2]; 65_536], "value of {:?}", item.key);
            seen.push(item.key[2]);
        }
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    assert_eq!(seen, (0..n).collect::<Vec<_>>(), "every key once, in order");
}

async fn watch_resume_over_large_grants_fits_a_default_client(node: &Node1<'_>) {
    // Twelve locks, each held exclusively with 500 SHARED waiters whose fields are at their
    // limits. Each release grants its 500 waiters in one log entry (about 430 KB of events);
    // the twelve entries together are about 5 MB, more than a default client accepts at once.
    let mut c = node.locks().await;
    let (locks, waiters) = (12usize, 500usize);
    let lock_name = |l: usize| format!("wb{l:02}-{}", long(507));
    for l in 0..locks {
        let held = c.acquire(acquire_req(&lock_name(l), &format!("wb{l}-holder"), HOUR_MS, 0)).await.unwrap();
        assert_eq!(outcome(&held.into_inner()), pb::AcquireOutcome::Granted);
    }
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let mut c = c.clone();
            tokio::spawn(async move {
                for i in (t..locks * waiters).step_by(16) {
                    let (l, w) = (i / waiters, i % waiters);
                    let req = pb::AcquireRequest {
                        mode: pb::LockMode::Shared as i32,
                        owner: "o".repeat(256),
                        ..acquire_req(&lock_name(l), &format!("wb{l:02}-{w:04}-{}", "r".repeat(54)), HOUR_MS, 1)
                    };
                    let r = c.acquire(req).await.unwrap().into_inner();
                    assert_eq!(outcome(&r), pb::AcquireOutcome::Queued);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let from = node.cluster.last_log_index(1).await + 1;
    for l in 0..locks {
        let rel = pb::ReleaseRequest { name: lock_name(l), request_id: format!("wb{l}-holder") };
        assert!(c.release(rel).await.unwrap().into_inner().was_held);
    }
    // Resume from before the releases: the first read covers all twelve entries.
    let req = pb::WatchRequest { selector: Some(pb::watch_request::Selector::Prefix("wb".into())), start_index: from };
    let mut w = c.watch(req).await.unwrap().into_inner();
    let mut granted = 0;
    let mut last_index = 0;
    let mut messages = 0;
    let mut largest = 0;
    tokio::time::timeout(Duration::from_secs(20), async {
        while granted < locks * waiters {
            let m = w.message().await.unwrap_or_else(|e| panic!("watch: {:?} {}", e.code(), e.message()));
            let m = m.expect("the stream stays open");
            messages += 1;
            largest = largest.max(prost::Message::encoded_len(&m));
            for e in m.events {
                assert!(e.index >= last_index, "events in log order");
                last_index = e.index;
                if e.kind == pb::WatchEventKind::Granted as i32 {
                    granted += 1;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {granted} grants arrived"));
    println!("watch resume: {granted} grants in {messages} messages, the largest {largest} bytes");
}
