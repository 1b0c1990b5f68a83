//! Hand-built gRPC traffic for the bad-input tests, and process figures for the scale tests.
//!
//! - [`RawConn`]: HTTP/2 frames written byte by byte on a plain TCP socket, so a test can send
//!   what no well-behaved client would (garbage, truncated frames, lying gRPC length prefixes,
//!   compressed flags), and read the answer with just enough HPACK to see `grpc-status`.
//! - [`raw_unary`] and friends: a real tonic client whose codec sends the given bytes as the
//!   message, for hand-encoded protobuf (invalid UTF-8 in a `string`, broken wire format).
//! - [`rss_of`]: a node's resident memory from `/proc`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use prost::bytes::{Buf, BufMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic::Status;

use super::Node;

// ---------------------------------------------------------------------------------------------
// Protobuf by hand
// ---------------------------------------------------------------------------------------------

/// A length-delimited field (string, bytes or message) with any bytes at all in it.
pub fn pb_bytes(tag: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 12);
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut out);
    prost::encoding::encode_varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

/// A varint field.
pub fn pb_varint(tag: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    prost::encoding::encode_key(tag, prost::encoding::WireType::Varint, &mut out);
    prost::encoding::encode_varint(value, &mut out);
    out
}

/// Bytes that are not UTF-8 (a lone continuation byte, then two bytes no UTF-8 text contains).
pub const NOT_UTF8: &[u8] = b"ab\x80\xff\xfe";

// ---------------------------------------------------------------------------------------------
// A tonic client that sends raw message bytes
// ---------------------------------------------------------------------------------------------

/// Encodes a `Vec<u8>` as itself and decodes any message to its bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

async fn ready_grpc(channel: Channel) -> Result<tonic::client::Grpc<Channel>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| Status::unavailable(format!("channel not ready: {e}")))?;
    Ok(grpc)
}

fn path(path: &str) -> PathAndQuery {
    PathAndQuery::try_from(path.to_string()).expect("a gRPC method path")
}

/// A unary call to `method` (e.g. `/tenure.v1.Locks/Acquire`) whose request message is `body`,
/// exactly; answers the response message's bytes.
pub async fn raw_unary(channel: Channel, method: &str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = ready_grpc(channel).await?;
    grpc.unary(tonic::Request::new(body), path(method), RawCodec).await.map(|r| r.into_inner())
}

/// A server-streaming call (Watch) with a raw request; answers the first message, or the error
/// the call or the stream ends with. An empty stream answers `Ok(None)`.
pub async fn raw_server_streaming_first(
    channel: Channel,
    method: &str,
    body: Vec<u8>,
) -> Result<Option<Vec<u8>>, Status> {
    let mut grpc = ready_grpc(channel).await?;
    let mut stream = grpc.server_streaming(tonic::Request::new(body), path(method), RawCodec).await?.into_inner();
    stream.message().await
}

/// A bidirectional call (KeepAlive) sending one raw message; answers the first reply or the error.
pub async fn raw_bidi_first(channel: Channel, method: &str, body: Vec<u8>) -> Result<Option<Vec<u8>>, Status> {
    let mut grpc = ready_grpc(channel).await?;
    let outgoing = tokio_stream::iter(vec![body]);
    let mut stream = grpc.streaming(tonic::Request::new(outgoing), path(method), RawCodec).await?.into_inner();
    stream.message().await
}

// ---------------------------------------------------------------------------------------------
// HTTP/2 by hand (RFC 9113) with just enough HPACK (RFC 7541) to read an answer
// ---------------------------------------------------------------------------------------------

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// One frame: 24-bit length, type, flags, 31-bit stream id, payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    assert!(len < 1 << 24, "frame payload too long for the length field");
    let mut out = Vec::with_capacity(9 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Preface and an empty SETTINGS frame: how every HTTP/2 client starts.
pub fn client_start() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out
}

fn hpack_int(out: &mut Vec<u8>, first: u8, prefix_bits: u32, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// An HPACK header block of "literal without indexing, new name" fields (no Huffman).
pub fn hpack_literals(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.push(0x00);
        hpack_int(&mut out, 0, 7, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_int(&mut out, 0, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// The HEADERS frame (stream 1, END_HEADERS) of a gRPC call to `method` on `authority`, with
/// `extra` headers after the usual ones.
pub fn grpc_headers_frame(authority: &str, method: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut headers = vec![
        (":method", "POST"),
        (":scheme", "http"),
        (":path", method),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ];
    headers.extend_from_slice(extra);
    frame(HEADERS, END_HEADERS, 1, &hpack_literals(&headers))
}

/// A gRPC length-prefixed message: compressed flag, 32-bit length, body.
pub fn grpc_message(compressed_flag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = grpc_prefix(compressed_flag, body.len() as u32);
    out.extend_from_slice(body);
    out
}

/// Only the 5-byte prefix, claiming `claimed_len` bytes follow.
pub fn grpc_prefix(compressed_flag: u8, claimed_len: u32) -> Vec<u8> {
    let mut out = vec![compressed_flag];
    out.extend_from_slice(&claimed_len.to_be_bytes());
    out
}

/// What a raw connection got back.
#[derive(Debug, Default)]
pub struct Answer {
    /// Every header field of stream 1 (response headers, then trailers), decoded.
    pub headers: Vec<(String, String)>,
    /// Stream 1's DATA payload.
    pub data: Vec<u8>,
    /// RST_STREAM error code on stream 1.
    pub reset: Option<u32>,
    /// GOAWAY error code and debug text.
    pub goaway: Option<(u32, String)>,
    /// Stream 1 ended (END_STREAM).
    pub ended: bool,
    /// The server closed the TCP connection.
    pub closed: bool,
    /// Frames or header blocks this reader could not make sense of.
    pub undecodable: Option<String>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `grpc-status` as a number.
    pub fn grpc_status(&self) -> Option<i32> {
        self.header("grpc-status").and_then(|s| s.parse().ok())
    }

    /// `grpc-message`, percent-decoded.
    pub fn grpc_message(&self) -> String {
        let raw = self.header("grpc-message").unwrap_or_default().as_bytes();
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let hex = raw.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match (raw[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'%', Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A one-line summary for assertion messages.
    pub fn summary(&self) -> String {
        format!(
            "grpc-status {:?} {:?}, :status {:?}, reset {:?}, goaway {:?}, ended {}, closed {}, undecodable {:?}",
            self.grpc_status(),
            self.grpc_message(),
            self.header(":status"),
            self.reset,
            self.goaway,
            self.ended,
            self.closed,
            self.undecodable
        )
    }
}

/// A plain TCP connection to a node's gRPC port, driven by hand.
pub struct RawConn {
    stream: TcpStream,
    hpack: Hpack,
}

impl RawConn {
    pub async fn connect(addr: &str) -> RawConn {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .expect("connect within 5 s")
            .expect("connect to the node's gRPC port");
        stream.set_nodelay(true).expect("nodelay");
        RawConn { stream, hpack: Hpack::default() }
    }

    /// Writes `bytes`. The server may already have closed the connection, so a failed write is
    /// reported, not fatal.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Closes our sending half (the server reads EOF).
    pub async fn close_write(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Reads frames until stream 1 ends or is reset, the server sends GOAWAY or closes, or
    /// `within` passes; the last is a hang and fails the test. SETTINGS and PINGs are answered.
    pub async fn answer(&mut self, within: Duration) -> Answer {
        let deadline = Instant::now() + within;
        let mut a = Answer::default();
        let mut block: Vec<u8> = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut head = [0u8; 9];
            match tokio::time::timeout(left, self.stream.read_exact(&mut head)).await {
                Err(_) => panic!("no answer within {within:?} (a hang); so far: {}", a.summary()),
                Ok(Err(_)) => {
                    a.closed = true;
                    return a;
                }
                Ok(Ok(_)) => {}
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (kind, flags) = (head[3], head[4]);
            let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stream.read_exact(&mut payload)).await {
                Err(_) => panic!("frame body not sent within {within:?}; so far: {}", a.summary()),
                Ok(Err(_)) => {
                    a.closed = true;
                    return a;
                }
                Ok(Ok(_)) => {}
            }
            match kind {
                SETTINGS if flags & ACK == 0 => {
                    let _ = self.send(&frame(SETTINGS, ACK, 0, &[])).await;
                }
                PING if flags & ACK == 0 => {
                    let _ = self.send(&frame(PING, ACK, 0, &payload)).await;
                }
                GOAWAY => {
                    let code = payload.get(4..8).map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    let debug = String::from_utf8_lossy(payload.get(8..).unwrap_or_default()).into_owned();
                    a.goaway = Some((code, debug));
                    return a;
                }
                RST_STREAM if stream == 1 => {
                    a.reset = payload.get(..4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    return a;
                }
                HEADERS | CONTINUATION if stream == 1 => {
                    let mut fragment = payload.as_slice();
                    if kind == HEADERS {
                        fragment = strip_headers_padding(fragment, flags);
                    }
                    block.extend_from_slice(fragment);
                    if flags & END_HEADERS != 0 {
                        match self.hpack.decode(&block) {
                            Ok(fields) => a.headers.extend(fields),
                            Err(e) => a.undecodable = Some(e),
                        }
                        block.clear();
                    }
                    if kind == HEADERS && flags & END_STREAM != 0 {
                        a.ended = true;
                        return a;
                    }
                }
                DATA if stream == 1 => {
                    a.data.extend_from_slice(&payload);
                    if flags & END_STREAM != 0 {
                        a.ended = true;
                        return a;
                    }
                }
                _ => {}
            }
        }
    }
}

/// A HEADERS payload without its padding and priority fields.
fn strip_headers_padding(p: &[u8], flags: u8) -> &[u8] {
    const PADDED: u8 = 0x8;
    const PRIORITY: u8 = 0x20;
    let mut p = p;
    let mut pad = 0usize;
    if flags & PADDED != 0 && !p.is_empty() {
        pad = p[0] as usize;
        p = &p[1..];
    }
    if flags & PRIORITY != 0 && p.len() >= 5 {
        p = &p[5..];
    }
    &p[..p.len().saturating_sub(pad)]
}

/// An HPACK decoder: static and dynamic tables, integers, Huffman strings.
#[derive(Default)]
struct Hpack {
    /// Newest first.
    dynamic: VecDeque<(String, String)>,
    max_size: Option<usize>,
}

impl Hpack {
    fn size(&self) -> usize {
        self.dynamic.iter().map(|(n, v)| n.len() + v.len() + 32).sum()
    }

    fn evict(&mut self) {
        let max = self.max_size.unwrap_or(4096);
        while self.size() > max {
            self.dynamic.pop_back();
        }
    }

    fn entry(&self, index: usize) -> Result<(String, String), String> {
        const STATIC_LEN: usize = 61;
        match index {
            0 => Err("HPACK index 0".into()),
            i if i <= STATIC_LEN => {
                let entry = STATIC_TABLE.split('|').nth(i - 1).unwrap_or_default();
                let (n, v) = entry.split_once('=').unwrap_or((entry, ""));
                Ok((n.to_string(), v.to_string()))
            }
            i => self.dynamic.get(i - STATIC_LEN - 1).cloned().ok_or_else(|| format!("HPACK index {i} unknown")),
        }
    }

    fn decode(&mut self, mut src: &[u8]) -> Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        while let Some(&b) = src.first() {
            if b & 0x80 != 0 {
                let i = hpack_read_int(&mut src, 7)?;
                out.push(self.entry(i)?);
            } else if b & 0xc0 == 0x40 {
                let i = hpack_read_int(&mut src, 6)?;
                let name = if i == 0 { hpack_read_str(&mut src)? } else { self.entry(i)?.0 };
                let value = hpack_read_str(&mut src)?;
                self.dynamic.push_front((name.clone(), value.clone()));
                self.evict();
                out.push((name, value));
            } else if b & 0xe0 == 0x20 {
                self.max_size = Some(hpack_read_int(&mut src, 5)?);
                self.evict();
            } else {
                let i = hpack_read_int(&mut src, 4)?;
                let name = if i == 0 { hpack_read_str(&mut src)? } else { self.entry(i)?.0 };
                let value = hpack_read_str(&mut src)?;
                out.push((name, value));
            }
        }
        Ok(out)
    }
}

fn hpack_read_int(src: &mut &[u8], prefix_bits: u32) -> Result<usize, String> {
    let max = (1usize << prefix_bits) - 1;
    let first = *src.first().ok_or("HPACK integer missing")? as usize & max;
    *src = &src[1..];
    if first < max {
        return Ok(first);
    }
    let mut value = max;
    for shift in (0..35).step_by(7) {
        let b = *src.first().ok_or("HPACK integer truncated")?;
        *src = &src[1..];
        value += ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("HPACK integer too long".into())
}

fn hpack_read_str(src: &mut &[u8]) -> Result<String, String> {
    let huffman = src.first().is_some_and(|b| b & 0x80 != 0);
    let len = hpack_read_int(src, 7)?;
    let bytes = src.get(..len).ok_or("HPACK string truncated")?;
    *src = &src[len..];
    let bytes = if huffman { huffman_decode(bytes)? } else { bytes.to_vec() };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn huffman_decode(src: &[u8]) -> Result<Vec<u8>, String> {
    let table: HashMap<(u8, u32), u8> = (0..256).map(|s| ((HUFFMAN_LENGTHS[s], HUFFMAN_CODES[s]), s as u8)).collect();
    let mut out = Vec::new();
    let (mut code, mut bits) = (0u32, 0u8);
    for byte in src {
        for i in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> i) & 1);
            bits += 1;
            if let Some(&sym) = table.get(&(bits, code)) {
                out.push(sym);
                code = 0;
                bits = 0;
            } else if bits > 30 {
                return Err("bad Huffman code".into());
            }
        }
    }
    // What is left must be padding: fewer than 8 one-bits.
    if bits >= 8 || code != (1u32 << bits) - 1 {
        return Err("bad Huffman padding".into());
    }
    Ok(out)
}

/// RFC 7541 Appendix A: `name` or `name=value`, in index order from 1.
const STATIC_TABLE: &str = ":authority|:method=GET|:method=POST|:path=/|:path=/index.html|:scheme=http|:scheme=https|\
    :status=200|:status=204|:status=206|:status=304|:status=400|:status=404|:status=500|\
    accept-charset|accept-encoding=gzip, deflate|accept-language|accept-ranges|accept|\
    access-control-allow-origin|age|allow|authorization|cache-control|content-disposition|\
    content-encoding|content-language|content-length|content-location|content-range|content-type|\
    cookie|date|etag|expect|expires|from|host|if-match|if-modified-since|if-none-match|if-range|\
    if-unmodified-since|last-modified|link|location|max-forwards|proxy-authenticate|\
    proxy-authorization|range|referer|refresh|retry-after|server|set-cookie|\
    strict-transport-security|transfer-encoding|user-agent|vary|via|www-authenticate";

// RFC 7541 Appendix B: the Huffman code of each byte value, and its length in bits.
const HUFFMAN_CODES: [u32; 256] = [
    0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, 0xfffffe8, 0xffffea,
    0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, 0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0,
    0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, 0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9,
    0xffffffa, 0xffffffb, 0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16,
    0x17, 0x18, 0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc,
    0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
    0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22, 0x7ffd, 0x3, 0x23, 0x4,
    0x24, 0x5, 0x25, 0x26, 0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7, 0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78,
    0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, 0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3,
    0x3fffd4, 0x3fffd5, 0x7fffd9, 0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf,
    0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3, 0x7fffe4, 0x1fffdc, 0x3fffd8,
    0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, 0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8,
    0x7fffe9, 0x1fffde, 0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, 0x1fffe0,
    0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4,
    0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, 0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8,
    0x1ffffec, 0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2,
    0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5, 0x3ffffe8,
    0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5, 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7,
    0x1fffe8, 0x7ffff3, 0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, 0x3ffffeb,
    0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, 0x7ffffeb, 0xffffffe, 0x7ffffec,
    0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
];

const HUFFMAN_LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28,
    28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12,
    10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6,
    5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22,
    22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20,
    22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28,
    27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28,
    27, 27, 27, 27, 27, 26,
];

// ---------------------------------------------------------------------------------------------
// Process figures
// ---------------------------------------------------------------------------------------------

/// The process id of a running node.
pub fn pid_of(node: &Node) -> Option<u32> {
    node.child.as_ref().map(|c| c.id())
}

/// (VmRSS, VmHWM) of a running node in KiB, from `/proc/<pid>/status`.
pub fn rss_of(node: &Node) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid_of(node)?)).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
