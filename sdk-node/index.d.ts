// Types of the tenure Node SDK (index.js, index.mjs). Hand-written: the addon's generated
// types are in binding.d.ts.
/// <reference types="node" />
/// <reference lib="esnext.disposable" />

/** Options of `new Client()`. */
export interface ClientOptions {
  /**
   * The nodes to talk to, as `host:port` or `http(s)://host:port` (an array or a
   * comma-separated string). Default: `TENURE_ENDPOINTS`, else `127.0.0.1:7070`.
   */
  endpoints?: string | readonly string[]
  /** Free text recorded with every lease (≤ 256 bytes). Default: `hostname:pid`. */
  owner?: string
  /** How long one call may take, retries included (default 5000). Lock waits come on top. */
  timeoutMs?: number
  /**
   * The CA certificate (PEM file) of a cluster that serves TLS; endpoints without a scheme
   * then use https.
   */
  tlsCaFile?: string
  /** A bearer token sent with every call, for a cluster that requires one (`--auth-config`). */
  bearerToken?: string
}

/** Options of `client.acquire()` and `client.withLock()`. */
export interface AcquireOptions {
  /** The lease's time to live (default 30000; the server's minimum is 1000 by default). */
  ttlMs?: number
  /** How long to wait for the lock (default: until granted; 0: try once). */
  waitMs?: number
  /** Take the lock shared, with at most `limit` holders (0: no limit). Default false. */
  shared?: boolean
  /** The most holders of a shared lock (0: no limit); only with `shared: true`. */
  limit?: number
  /** After this lease expires (not after a release), nobody gets the lock for this long (≤ 60000). */
  lockDelayMs?: number
  /** Aborting it rejects the call with `signal.reason` and withdraws the request. */
  signal?: AbortSignal
}

/** Options of `client.tryAcquire()`: never waits. */
export type TryAcquireOptions = Omit<AcquireOptions, 'waitMs'>

export type Mode = 'EXCLUSIVE' | 'SHARED'

/** A fence on a grant: a KV write with `ifFence` applies only while `token` holds `name`. */
export interface Fence {
  name: string
  token: bigint | number
}

/** Options of fenced KV writes. */
export interface KvWriteOptions {
  /** Apply the write only if this grant (a Lease or `{ name, token }`) is current. */
  ifFence?: Lease | Fence
}

/** Keys and values: strings are UTF-8 encoded. */
export type Bytes = string | Buffer | Uint8Array

/** A hold of a lock, as the server reports it. */
export interface LeaseInfo {
  name: string
  requestId: string
  owner: string
  mode: Mode
  token: bigint
  ttlMs: number
  grantedAt: Date
  expiresAt: Date
}

/** A request waiting in a lock's queue. */
export interface WaiterInfo {
  requestId: string
  owner: string
  mode: Mode
  position: number
  ttlMs: number
  enqueuedAt: Date
}

/** Holders, waiters (in queue order) and limit of one lock. */
export interface LockDescription {
  name: string
  exists: boolean
  holders: LeaseInfo[]
  waiters: WaiterInfo[]
  limit: number
  /** Set while the lock is held back by a lock-delay after an expiry. */
  delayedUntil: Date | null
}

/** One lock of `client.list()`. */
export interface LockSummary {
  name: string
  holders: number
  waiters: number
  mode: Mode
  limit: number
}

/** Whether a token is a current hold, and the current holders' tokens. */
export interface FenceStatus {
  current: boolean
  currentTokens: bigint[]
}

/** An entry of the KV store. */
export interface KvEntry {
  key: Buffer
  value: Buffer
  /** The write's log index. */
  revision: bigint
}

export type Role = 'leader' | 'follower' | 'learner' | 'candidate' | 'unknown'

export interface Member {
  id: number
  grpcAddr: string
  httpAddr: string
  role: Role
  matchedIndex: number
}

/** The cluster as one node sees it. */
export interface ClusterStatus {
  nodeId: number
  role: Role
  leaderId: number | null
  leaderAddr: string
  term: number
  members: Member[]
  commitIndex: number
  appliedIndex: number
  lastLogIndex: number
  quorumSize: number
  hasQuorum: boolean
  clusterId: string
  snapshotIndex: number
  purgedIndex: number
}

/** Options of `client.watch()`. */
export interface WatchOptions {
  /** Watch every lock whose name starts with `name` ('' is every lock). Default false. */
  prefix?: boolean
  /** Start at this log index (resume with the last handled event's `index + 1n`). Default: now. */
  fromIndex?: bigint | number
  /** Aborting it ends the watch; its pending and later steps reject with `signal.reason`. */
  signal?: AbortSignal
}

export type LockEventKind = 'QUEUED' | 'GRANTED' | 'RELEASED' | 'EXPIRED' | 'CANCELLED'

/** One committed change of one request. */
export interface LockEvent {
  /** Log index of the entry that made the change (several events can share one). */
  index: bigint
  kind: LockEventKind
  name: string
  requestId: string
  /** GRANTED, and RELEASED/EXPIRED of a hold: the hold's fencing token; otherwise 0n. */
  token: bigint
  /** QUEUED and GRANTED: who asked (empty otherwise). */
  owner: string
  /** QUEUED and GRANTED: the requested mode (EXCLUSIVE otherwise). */
  mode: Mode
  /** QUEUED: 1-based place in the queue; otherwise 0. */
  position: number
  /** RELEASED by an administrator's ForceRelease (`tenure force-release`) rather than by the holder. */
  forced: boolean
  /** The leader's wall-clock time of the entry. */
  at: Date
}

/**
 * The committed events of a lock (or of every lock under a prefix), in log order, delivered
 * once each across node failures: `for await (const event of client.watch(name))`.
 */
export declare class Watch implements AsyncIterableIterator<LockEvent, undefined>, AsyncDisposable {
  private constructor()
  /** Resolves once the watch has started; rejects if it cannot (e.g. `Compacted`, `InvalidArgument`). */
  readonly ready: Promise<void>
  /** Whether the watch has ended (closed, aborted, or failed to open). */
  readonly closed: boolean
  /**
   * The next event; `{ done: true }` once the watch is closed. Rejects with `Unavailable` when
   * no node answered for a while (the watch stays open: call again to keep trying), and with
   * other errors (e.g. `Compacted`) that end it.
   */
  next(): Promise<IteratorResult<LockEvent, undefined>>
  /** Ends the watch (called by `break` in `for await`). */
  return(): Promise<IteratorResult<LockEvent, undefined>>
  /** Ends the watch: a pending `next()` resolves to `{ done: true }`. Idempotent. */
  close(): void
  [Symbol.asyncIterator](): Watch
  [Symbol.asyncDispose](): Promise<void>
}

/**
 * A held lock. The client renews it in the background until `release()`. Keep a reference
 * while you hold the lock: a Lease that is garbage-collected is released.
 */
export declare class Lease implements AsyncDisposable {
  private constructor()
  readonly name: string
  /** The fencing token of this grant: unique, and higher than every earlier grant's. */
  readonly token: bigint
  readonly requestId: string
  readonly owner: string
  readonly mode: Mode
  readonly ttlMs: number
  readonly grantedAt: Date
  /** Until when the client is sure the lease is held, unless a renewal is confirmed before. */
  readonly expiresAt: Date
  /** Granted, not released, not lost, and renewed recently enough. */
  readonly held: boolean
  /** Aborted, with a `LeaseLost` as its reason, when the lease is lost (never after a release). */
  readonly lost: AbortSignal
  /** Why the lease was lost, once it has been. */
  readonly lostReason: string | null
  /** `{ name, token }` of this grant. */
  readonly fence: { name: string; token: bigint }
  /** Renews now, on top of the background keepalive; rejects with `LeaseLost` if it is gone. */
  renew(): Promise<void>
  /** Releases the lock; resolves to whether it was still held. Idempotent. */
  release(): Promise<boolean>
  [Symbol.asyncDispose](): Promise<void>
}

/** The small replicated key/value store. */
export declare class Kv {
  private constructor()
  get(key: Bytes): Promise<KvEntry | null>
  /** Resolves to the write's revision; rejects with `FencedOut` if `ifFence` is not current. */
  put(key: Bytes, value: Bytes, options?: KvWriteOptions): Promise<bigint>
  /** Resolves to whether the key existed; rejects with `FencedOut` if `ifFence` is not current. */
  delete(key: Bytes, options?: KvWriteOptions): Promise<boolean>
  list(prefix?: Bytes): Promise<KvEntry[]>
}

/** A client of a tenure cluster. Making one contacts no node; share one per process. */
export declare class Client implements AsyncDisposable {
  constructor(options?: ClientOptions)
  readonly owner: string
  readonly timeoutMs: number
  readonly kv: Kv
  /** Takes the lock, waiting as `options` say; rejects with `LockTimeout` when `waitMs` runs out. */
  acquire(name: string, options?: AcquireOptions): Promise<Lease>
  /** Takes the lock only if it is free now; `null` when it is busy. */
  tryAcquire(name: string, options?: TryAcquireOptions): Promise<Lease | null>
  /** Takes the lock, runs `fn`, and releases the lock when `fn` settles. */
  withLock<T>(name: string, options: AcquireOptions, fn: (lease: Lease) => T | PromiseLike<T>): Promise<T>
  withLock<T>(name: string, fn: (lease: Lease) => T | PromiseLike<T>): Promise<T>
  describe(name: string): Promise<LockDescription>
  list(prefix?: string): Promise<LockSummary[]>
  validateFence(name: string, token: bigint | number): Promise<FenceStatus>
  clusterStatus(): Promise<ClusterStatus>
  /**
   * Watches the committed events of lock `name` (or, with `prefix: true`, of every lock under
   * that prefix). Bad arguments throw `InvalidArgument` at once.
   */
  watch(name: string, options?: WatchOptions): Watch
  /** Releases every lease this client holds or waits for. The client stays usable. */
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'LIMIT_MISMATCH'
  | 'FENCED_OUT'
  | 'REQUEST_FINISHED'
  | 'RESOURCE_EXHAUSTED'
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'COMPACTED'
  | 'QUORUM_AT_RISK'
  | 'TIMEOUT'
  | 'LEASE_LOST'
  | 'CANCELLED'
  | 'UNAVAILABLE'
  | 'INTERNAL'

/** Base class of every tenure error; `code` is the core's stable code (the same in every SDK). */
export declare class TenureError extends Error {
  static readonly code: string
  constructor(message: string, options?: { code?: string; field?: string; cause?: unknown })
  readonly code: ErrorCode | string
  /** The offending argument, for INVALID_ARGUMENT. */
  readonly field?: string
}
export declare class InvalidArgument extends TenureError {
  readonly code: 'INVALID_ARGUMENT'
}
export declare class LimitMismatch extends TenureError {
  readonly code: 'LIMIT_MISMATCH'
}
export declare class FencedOut extends TenureError {
  readonly code: 'FENCED_OUT'
}
export declare class RequestFinished extends TenureError {
  readonly code: 'REQUEST_FINISHED'
}
export declare class ResourceExhausted extends TenureError {
  readonly code: 'RESOURCE_EXHAUSTED'
}
export declare class Unauthenticated extends TenureError {
  readonly code: 'UNAUTHENTICATED'
}
export declare class PermissionDenied extends TenureError {
  readonly code: 'PERMISSION_DENIED'
}
export declare class Compacted extends TenureError {
  readonly code: 'COMPACTED'
}
/** A membership change was refused (not thrown by this package's calls). */
export declare class QuorumAtRisk extends TenureError {
  readonly code: 'QUORUM_AT_RISK'
}
/** The wait ran out (or `waitMs: 0` found the lock busy); the request was withdrawn. */
export declare class LockTimeout extends TenureError {
  readonly code: 'TIMEOUT'
}
/** The lease is gone, or its renewal could not be confirmed in time. */
export declare class LeaseLost extends TenureError {
  readonly code: 'LEASE_LOST'
}
export declare class Cancelled extends TenureError {
  readonly code: 'CANCELLED'
}
/** No node answered within the call's deadline. */
export declare class Unavailable extends TenureError {
  readonly code: 'UNAVAILABLE'
}
export declare class InternalError extends TenureError {
  readonly code: 'INTERNAL'
}

/** The error class of every stable code. */
export declare const errorClasses: Readonly<Record<ErrorCode, typeof TenureError>>
/** Every stable code the client core can report. */
export declare const ERROR_CODES: readonly ErrorCode[]
/** The endpoint used when none is given and `TENURE_ENDPOINTS` is unset. */
export declare const DEFAULT_ENDPOINT: string
