'use strict'
// The tenure Node SDK: an idiomatic layer (Promises, withLock, AbortSignal, Dates, one error
// class per code) over the napi addon in binding.js, which wraps the Rust client core. All lock
// logic (retries, redirects, FIFO-fair waiting, keepalive, lost leases) lives in the core; this
// file checks arguments, converts values and maps errors.

const native = require('./binding.js')

// Node 20 has Symbol.asyncDispose (as Symbol.for('nodejs.asyncDispose')); older runtimes and
// some bundlers do not, so the well-known name is filled in when missing.
if (typeof Symbol.asyncDispose !== 'symbol') {
  Object.defineProperty(Symbol, 'asyncDispose', { value: Symbol.for('nodejs.asyncDispose') })
}

// ---- errors -------------------------------------------------------------------------------

/** Base class of every tenure error; `code` is the core's stable code string. */
class TenureError extends Error {
  static code = 'UNKNOWN'

  constructor(message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = options.code ?? new.target.code
    // The offending argument, for INVALID_ARGUMENT (e.g. 'ttlMs', 'name'); else undefined.
    if (options.field) this.field = options.field
  }
}

const define = (name, code) => {
  const cls = { [name]: class extends TenureError {} }[name]
  cls.code = code
  return cls
}

const InvalidArgument = define('InvalidArgument', 'INVALID_ARGUMENT')
const LimitMismatch = define('LimitMismatch', 'LIMIT_MISMATCH')
const FencedOut = define('FencedOut', 'FENCED_OUT')
const RequestFinished = define('RequestFinished', 'REQUEST_FINISHED')
const ResourceExhausted = define('ResourceExhausted', 'RESOURCE_EXHAUSTED')
const Unauthenticated = define('Unauthenticated', 'UNAUTHENTICATED')
const PermissionDenied = define('PermissionDenied', 'PERMISSION_DENIED')
const Compacted = define('Compacted', 'COMPACTED')
const QuorumAtRisk = define('QuorumAtRisk', 'QUORUM_AT_RISK')
const LockTimeout = define('LockTimeout', 'TIMEOUT')
const LeaseLost = define('LeaseLost', 'LEASE_LOST')
const Cancelled = define('Cancelled', 'CANCELLED')
const Unavailable = define('Unavailable', 'UNAVAILABLE')
const InternalError = define('InternalError', 'INTERNAL')

/** The error class of every stable code, by code. */
const errorClasses = Object.freeze(
  Object.fromEntries(
    [
      InvalidArgument,
      LimitMismatch,
      FencedOut,
      RequestFinished,
      ResourceExhausted,
      Unauthenticated,
      PermissionDenied,
      Compacted,
      QuorumAtRisk,
      LockTimeout,
      LeaseLost,
      Cancelled,
      Unavailable,
      InternalError,
    ].map((cls) => [cls.code, cls]),
  ),
)

/** Every stable code the client core can report (the same list in every SDK). */
const ERROR_CODES = Object.freeze(native.errorCodes())

// The addon puts the code (and INVALID_ARGUMENT's field) in front of the message:
// `TENURE_<CODE>[<field>]: <message>` (bindings/node/src/errors.rs).
const NATIVE_ERROR = /^TENURE_([A-Z_]+)\[([^\]]*)\]: ([\s\S]*)$/

/** The error the addon threw, as an instance of its class; other errors pass unchanged. */
function fromNative(e) {
  const m = e instanceof Error ? NATIVE_ERROR.exec(e.message) : null
  if (!m) return e
  const [, code, field, message] = m
  const cls = errorClasses[code] ?? TenureError
  return new cls(message, { code, field: field || undefined })
}

/** Runs `f()` (a call into the addon) and maps what it throws or rejects with. */
async function call(f) {
  try {
    return await f()
  } catch (e) {
    throw fromNative(e)
  }
}

// ---- arguments ----------------------------------------------------------------------------

function invalid(field, message) {
  return new InvalidArgument(message, { field })
}

function checkName(name, field = 'name') {
  if (typeof name !== 'string') throw invalid(field, `${field} must be a string, got ${typeof name}`)
  return name
}

function optionalMs(options, field) {
  const v = options[field]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw invalid(field, `${field} must be a finite number of milliseconds >= 0, got ${String(v)}`)
  }
  return v
}

function checkOptions(options, what) {
  if (options === undefined || options === null) return {}
  if (typeof options !== 'object') throw invalid('options', `${what} options must be an object`)
  return options
}

/** The addon's acquire options from the user's; absent values take the core's defaults. */
function acquireOptions(options, { wait }) {
  const o = {
    ttlMs: optionalMs(options, 'ttlMs'),
    waitMs: wait ? optionalMs(options, 'waitMs') : 0,
    lockDelayMs: optionalMs(options, 'lockDelayMs'),
  }
  if (options.shared !== undefined) {
    if (typeof options.shared !== 'boolean') throw invalid('shared', 'shared must be a boolean')
    o.shared = options.shared
  }
  if (options.limit !== undefined) {
    const l = options.limit
    if (!Number.isInteger(l) || l < 0 || l > 0xffffffff) {
      throw invalid('limit', `limit must be an integer in 0..=4294967295, got ${String(l)}`)
    }
    o.limit = l
  }
  return o
}

function checkSignal(signal) {
  if (signal === undefined || signal === null) return undefined
  if (!(signal instanceof AbortSignal)) throw invalid('signal', 'signal must be an AbortSignal')
  return signal
}

function toToken(token, field = 'token') {
  if (typeof token === 'bigint') return token
  if (Number.isSafeInteger(token)) return BigInt(token)
  throw invalid(field, `${field} must be a bigint (or a safe integer), got ${typeof token}`)
}

/** A log index: a bigint (or a safe integer) in 0..=2^64-1. */
function toIndex(v, field) {
  const ok = typeof v === 'bigint' ? v >= 0n && v < 2n ** 64n : Number.isSafeInteger(v) && v >= 0
  if (!ok) throw invalid(field, `${field} must be a bigint (or a safe integer) in 0..=2^64-1, got ${String(v)}`)
  return BigInt(v)
}

function toBytes(v, field) {
  if (typeof v === 'string') return Buffer.from(v, 'utf8')
  if (Buffer.isBuffer(v)) return v
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  throw invalid(field, `${field} must be a string, Buffer or Uint8Array`)
}

/** `ifFence`: a Lease or `{ name, token }`. */
function toFence(f) {
  if (f === undefined || f === null) return undefined
  if (f instanceof Lease || (typeof f === 'object' && 'name' in f && 'token' in f)) {
    return { name: checkName(f.name, 'ifFence.name'), token: toToken(f.token, 'ifFence.token') }
  }
  throw invalid('ifFence', 'ifFence must be a Lease or { name, token }')
}

// ---- values -------------------------------------------------------------------------------

const date = (ms) => new Date(ms)

function leaseInfo(l) {
  return {
    name: l.name,
    requestId: l.requestId,
    owner: l.owner,
    mode: l.mode,
    token: l.token,
    ttlMs: l.ttlMs,
    grantedAt: date(l.grantedAtMs),
    expiresAt: date(l.expiresAtMs),
  }
}

function lockDescription(d) {
  return {
    name: d.name,
    exists: d.exists,
    holders: d.holders.map(leaseInfo),
    waiters: d.waiters.map((w) => ({
      requestId: w.requestId,
      owner: w.owner,
      mode: w.mode,
      position: w.position,
      ttlMs: w.ttlMs,
      enqueuedAt: date(w.enqueuedAtMs),
    })),
    limit: d.limit,
    delayedUntil: d.delayedUntilMs == null ? null : date(d.delayedUntilMs),
  }
}

function clusterStatus(s) {
  return { ...s, leaderId: s.leaderId ?? null }
}

// ---- lease --------------------------------------------------------------------------------

/**
 * A held lock. The client renews it in the background until `release()`; `lost` is aborted
 * (with a LeaseLost reason) if it is lost before that. Keep a reference while you hold the
 * lock: a Lease that is garbage-collected is released.
 */
class Lease {
  #native
  #lost

  constructor(nativeLease) {
    this.#native = nativeLease
    this.name = nativeLease.name
    this.token = nativeLease.token
    this.requestId = nativeLease.requestId
    this.owner = nativeLease.owner
    this.mode = nativeLease.mode
    this.ttlMs = nativeLease.ttlMs
    this.grantedAt = date(nativeLease.grantedAtMs)
    const controller = new AbortController()
    this.#lost = controller.signal
    const name = this.name
    // The callback must not reference the lease (or its addon object): it lives in the
    // addon until the lease ends, and would keep an unreferenced lease from being collected.
    nativeLease.onLost((reason) => {
      controller.abort(new LeaseLost(`the lease on ${JSON.stringify(name)} was lost: ${reason}`))
    })
  }

  /** Until when the client is sure the lease is held, unless a renewal is confirmed before. */
  get expiresAt() {
    return date(this.#native.expiresAtMs)
  }

  /** Whether the lease is held: granted, not released, not lost, renewed recently enough. */
  get held() {
    return this.#native.held
  }

  /** Aborted (with a LeaseLost as its reason) when the lease is lost; never after a release. */
  get lost() {
    return this.#lost
  }

  /** Why the lease was lost, once it has been; else null. */
  get lostReason() {
    return this.#native.lostReason
  }

  /** `{ name, token }` of this grant, for fenced KV writes. */
  get fence() {
    return { name: this.name, token: this.token }
  }

  /** Renews the lease now (on top of the background keepalive); rejects with LeaseLost if gone. */
  async renew() {
    return call(() => this.#native.renew())
  }

  /** Releases the lock; resolves to whether it was still held. Idempotent. */
  async release() {
    return call(() => this.#native.release())
  }

  async [Symbol.asyncDispose]() {
    await this.release()
  }
}

// ---- watch --------------------------------------------------------------------------------

function lockEvent(e) {
  return {
    index: e.index,
    kind: e.kind,
    name: e.name,
    requestId: e.requestId,
    token: e.token,
    owner: e.owner,
    mode: e.mode,
    position: e.position,
    forced: e.forced,
    at: date(e.atMs),
  }
}

const DONE = Object.freeze({ done: true, value: undefined })

/**
 * The committed events of a lock (or of every lock under a prefix), in log order: an async
 * iterator, opened by `client.watch()`. `ready` resolves once it has started; every event
 * committed from then on (or from `fromIndex`) is delivered once, across node failures.
 * `close()`, `return()` (a `break` out of `for await`) and `[Symbol.asyncDispose]` end it; an
 * aborted signal ends it too, and its steps then reject with `signal.reason`.
 */
class Watch {
  #cancel = new native.CancelToken()
  #native = null
  #opening
  #signal
  #onAbort
  #closed = false

  constructor(open, signal) {
    this.#signal = signal
    if (signal?.aborted) {
      this.#closed = true
      this.#opening = Promise.reject(signal.reason)
    } else {
      this.#opening = open(this.#cancel).then(
        (w) => {
          this.#native = w
          if (this.#closed) w.close() // closed while it opened
          return w
        },
        (e) => {
          if (signal?.aborted) throw signal.reason
          if (this.#closed) return null
          this.close()
          throw fromNative(e)
        },
      )
      if (signal) {
        this.#onAbort = () => this.close()
        signal.addEventListener('abort', this.#onAbort, { once: true })
      }
    }
    /** Resolves once the watch has started (its start index is pinned); rejects if it cannot. */
    this.ready = this.#opening.then(() => undefined)
    // Not awaiting `ready` is fine: a failure to open also rejects the first `next()`.
    this.ready.catch(() => {})
  }

  /** Whether the watch has ended (closed, aborted, or failed to open). */
  get closed() {
    return this.#closed
  }

  /** The next event, `{ done: true }` once the watch is closed or has ended. */
  async next() {
    this.#signal?.throwIfAborted()
    const w = await this.#opening
    if (w === null || this.#closed) return this.#ended()
    let event
    try {
      event = await w.next(this.#cancel)
    } catch (e) {
      if (this.#closed) return this.#ended()
      const err = fromNative(e)
      // Unavailable (no node answered for a while) leaves the watch open: next() keeps trying.
      if (!(err instanceof Unavailable)) this.close()
      throw err
    }
    if (event === null) {
      this.close()
      return this.#ended()
    }
    return { done: false, value: lockEvent(event) }
  }

  /** A step of an ended watch: done, or `signal.reason` if the signal ended it. */
  #ended() {
    this.#signal?.throwIfAborted()
    return DONE
  }

  /** Ends the watch (what `break` in `for await` calls). */
  async return() {
    this.close()
    return DONE
  }

  /** Ends the watch: a pending `next()` resolves to `{ done: true }`. Idempotent. */
  close() {
    if (this.#closed) return
    this.#closed = true
    this.#cancel.cancel()
    this.#native?.close()
    if (this.#onAbort) this.#signal.removeEventListener('abort', this.#onAbort)
  }

  [Symbol.asyncIterator]() {
    return this
  }

  async [Symbol.asyncDispose]() {
    this.close()
  }
}

// ---- client -------------------------------------------------------------------------------

/** The small replicated key/value store; writes can be fenced by a lock (`ifFence`). */
class Kv {
  #native

  constructor(nativeClient) {
    this.#native = nativeClient
  }

  /** The entry at `key` (read linearizably), or null. */
  async get(key) {
    const k = toBytes(key, 'key')
    return call(() => this.#native.kvGet(k))
  }

  /** Writes `value` at `key`, if `ifFence` (when given) is current; resolves to the revision. */
  async put(key, value, options = {}) {
    const k = toBytes(key, 'key')
    const v = toBytes(value, 'value')
    const fence = toFence(checkOptions(options, 'kv.put').ifFence)
    return call(() => this.#native.kvPut(k, v, fence))
  }

  /** Deletes `key`, if `ifFence` (when given) is current; resolves to whether it existed. */
  async delete(key, options = {}) {
    const k = toBytes(key, 'key')
    const fence = toFence(checkOptions(options, 'kv.delete').ifFence)
    return call(() => this.#native.kvDelete(k, fence))
  }

  /** Every entry whose key starts with `prefix`, in byte order (read linearizably). */
  async list(prefix = '') {
    const p = toBytes(prefix, 'prefix')
    return call(() => this.#native.kvList(p))
  }
}

/** A client of a tenure cluster. Making one contacts no node; share one per process. */
class Client {
  #native

  /**
   * @param {{ endpoints?: string | string[], owner?: string, timeoutMs?: number, tlsCaFile?: string, bearerToken?: string }} [options]
   */
  constructor(options = {}) {
    const o = checkOptions(options, 'Client')
    let endpoints = o.endpoints ?? []
    if (typeof endpoints === 'string') endpoints = endpoints.split(',')
    if (!Array.isArray(endpoints) || endpoints.some((e) => typeof e !== 'string')) {
      throw invalid('endpoints', 'endpoints must be a string or an array of strings')
    }
    endpoints = endpoints.map((e) => e.trim()).filter((e) => e !== '')
    if (o.owner !== undefined && o.owner !== null && typeof o.owner !== 'string') {
      throw invalid('owner', 'owner must be a string')
    }
    const timeoutMs = optionalMs(o, 'timeoutMs')
    for (const field of ['tlsCaFile', 'bearerToken']) {
      if (o[field] !== undefined && o[field] !== null && typeof o[field] !== 'string') {
        throw invalid(field, `${field} must be a string`)
      }
    }
    try {
      this.#native = new native.NativeClient(
        endpoints,
        o.owner ?? null,
        timeoutMs ?? null,
        o.tlsCaFile ?? null,
        o.bearerToken ?? null,
      )
    } catch (e) {
      throw fromNative(e)
    }
    /** The replicated key/value store. */
    this.kv = new Kv(this.#native)
  }

  /** The owner text recorded with every lease this client takes. */
  get owner() {
    return this.#native.owner
  }

  /** How long one call may take, retries included, in milliseconds. */
  get timeoutMs() {
    return this.#native.timeoutMs
  }

  /**
   * Takes lock `name`. Waits until granted, or `waitMs` (then rejects with LockTimeout; the
   * request is withdrawn). An aborted `signal` rejects with `signal.reason` and withdraws the
   * request, so no holder or waiter is left behind.
   */
  async acquire(name, options = {}) {
    return this.#acquire('acquire', name, checkOptions(options, 'acquire'), true)
  }

  /** Takes lock `name` only if it is free now; resolves to null when it is busy. */
  async tryAcquire(name, options = {}) {
    return this.#acquire('tryAcquire', name, checkOptions(options, 'tryAcquire'), false)
  }

  async #acquire(method, name, options, wait) {
    checkName(name)
    const opts = acquireOptions(options, { wait })
    const signal = checkSignal(options.signal)
    signal?.throwIfAborted()
    const cancel = signal ? new native.CancelToken() : null
    const onAbort = () => cancel.cancel()
    signal?.addEventListener('abort', onAbort, { once: true })
    let nativeLease
    try {
      nativeLease = await this.#native[method](name, opts, cancel)
    } catch (e) {
      if (signal?.aborted) throw signal.reason
      throw fromNative(e)
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
    if (nativeLease === null) return null
    const lease = new Lease(nativeLease)
    if (signal?.aborted) {
      // Granted as the signal fired: give the lock back rather than hand out a lease the
      // caller no longer wants.
      await lease.release().catch(() => {})
      throw signal.reason
    }
    return lease
  }

  /**
   * Takes lock `name`, runs `fn(lease)`, and releases the lock when `fn` settles (returns or
   * throws). Rejects without running `fn` if the lock is not obtained; rejects with LeaseLost
   * if the lease was lost while `fn` ran (unless `fn` threw). `options` may be omitted.
   */
  async withLock(name, options, fn) {
    if (typeof options === 'function' && fn === undefined) {
      fn = options
      options = {}
    }
    if (typeof fn !== 'function') throw invalid('fn', 'withLock needs a function to run under the lock')
    const lease = await this.acquire(name, options)
    let result
    try {
      result = await fn(lease)
    } catch (e) {
      await lease.release().catch(() => {})
      throw e
    }
    const lost = lease.lost.aborted
    await lease.release()
    if (lost) throw lease.lost.reason
    return result
  }

  /** Holders, waiters (in queue order) and limit of lock `name`. */
  async describe(name) {
    checkName(name)
    return lockDescription(await call(() => this.#native.describe(name)))
  }

  /** Every lock whose name starts with `prefix`, in byte order. */
  async list(prefix = '') {
    checkName(prefix, 'prefix')
    return call(() => this.#native.list(prefix))
  }

  /** Whether `token` is a current hold of lock `name`, and the current holders' tokens. */
  async validateFence(name, token) {
    checkName(name)
    const t = toToken(token)
    return call(() => this.#native.validateFence(name, t))
  }

  /** The cluster as the first node that answers sees it. */
  async clusterStatus() {
    return clusterStatus(await call(() => this.#native.clusterStatus()))
  }

  /**
   * Watches the committed events of lock `name` (with `prefix: true`, of every lock whose name
   * starts with `name`; '' is every lock), from the next committed entry, or from `fromIndex`.
   * Returns a `Watch` at once (an async iterator: `for await (const event of client.watch(…))`);
   * bad arguments throw here, a refusal from the server rejects `ready` and the first `next()`.
   */
  watch(name, options = {}) {
    const o = checkOptions(options, 'watch')
    checkName(name)
    const opts = {}
    if (o.prefix !== undefined) {
      if (typeof o.prefix !== 'boolean') throw invalid('prefix', 'prefix must be a boolean')
      opts.prefix = o.prefix
    }
    if (o.fromIndex !== undefined && o.fromIndex !== null) opts.fromIndex = toIndex(o.fromIndex, 'fromIndex')
    const signal = checkSignal(o.signal)
    return new Watch((cancel) => this.#native.watch(name, opts, cancel), signal)
  }

  /**
   * Releases every lease this client holds or waits for and waits for the releases under way.
   * The client stays usable. Call it before a short-lived process exits.
   */
  async close() {
    return call(() => this.#native.close())
  }

  async [Symbol.asyncDispose]() {
    await this.close()
  }
}

module.exports = {
  Client,
  Lease,
  Kv,
  Watch,
  TenureError,
  InvalidArgument,
  LimitMismatch,
  FencedOut,
  RequestFinished,
  ResourceExhausted,
  Unauthenticated,
  PermissionDenied,
  Compacted,
  QuorumAtRisk,
  LockTimeout,
  LeaseLost,
  Cancelled,
  Unavailable,
  InternalError,
  errorClasses,
  ERROR_CODES,
  DEFAULT_ENDPOINT: native.DEFAULT_ENDPOINT,
}
