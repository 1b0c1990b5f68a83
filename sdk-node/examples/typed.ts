// The whole API, typed: `npm run typecheck` (tsc --noEmit) checks this file against index.d.ts.
// It also runs (compile it, or use a TypeScript runner) against a cluster in TENURE_ENDPOINTS.

import {
  Client,
  Compacted,
  DEFAULT_ENDPOINT,
  ERROR_CODES,
  FencedOut,
  InternalError,
  InvalidArgument,
  Lease,
  LeaseLost,
  LimitMismatch,
  LockTimeout,
  PermissionDenied,
  RequestFinished,
  ResourceExhausted,
  TenureError,
  Unauthenticated,
  Unavailable,
  Cancelled,
  errorClasses,
  type AcquireOptions,
  type ClusterStatus,
  type ErrorCode,
  type FenceStatus,
  type KvEntry,
  type LockDescription,
  type LockEvent,
  type LockEventKind,
  type LockSummary,
  type Watch,
  type WatchOptions,
} from 'tenure'

async function main(): Promise<void> {
  const client = new Client({ endpoints: process.env.TENURE_ENDPOINTS ?? DEFAULT_ENDPOINT, timeoutMs: 5000 })
  const also = new Client({ endpoints: ['127.0.0.1:7071', '127.0.0.1:7072'], owner: 'typed-example' })
  const owner: string = client.owner
  const timeoutMs: number = also.timeoutMs
  console.log(owner, timeoutMs)

  const options: AcquireOptions = { ttlMs: 30_000, waitMs: 10_000, lockDelayMs: 0, signal: AbortSignal.timeout(15_000) }
  const lease: Lease = await client.acquire('typed/job', options)
  const token: bigint = lease.token
  const expiresAt: Date = lease.expiresAt
  const grantedAt: Date = lease.grantedAt
  const held: boolean = lease.held
  const lost: AbortSignal = lease.lost
  const reason: string | null = lease.lostReason
  const id: string = lease.requestId
  console.log(lease.name, token, expiresAt, grantedAt, held, lost.aborted, reason, id, lease.mode, lease.ttlMs, lease.owner)
  lost.addEventListener('abort', () => console.error('lost', lost.reason))
  await lease.renew()

  const revision: bigint = await client.kv.put('typed/job/state', 'running', { ifFence: lease })
  await client.kv.put(Buffer.from('typed/job/raw'), new Uint8Array([1, 2]), { ifFence: { name: lease.name, token } })
  const entry: KvEntry | null = await client.kv.get('typed/job/state')
  if (entry !== null) console.log(entry.key.toString(), entry.value.toString('utf8'), entry.revision === revision)
  const entries: KvEntry[] = await client.kv.list('typed/')
  const existed: boolean = await client.kv.delete('typed/job/raw', { ifFence: lease.fence })
  console.log(entries.length, existed)

  const status: FenceStatus = await client.validateFence('typed/job', token)
  const tokens: bigint[] = status.currentTokens
  const description: LockDescription = await client.describe('typed/job')
  for (const h of description.holders) console.log(h.owner, h.token, h.expiresAt.toISOString())
  for (const w of description.waiters) console.log(w.owner, w.position, w.enqueuedAt)
  const locks: LockSummary[] = await client.list('typed/')
  const cluster: ClusterStatus = await client.clusterStatus()
  const leader: number | null = cluster.leaderId
  console.log(status.current, tokens, description.delayedUntil, locks.length, leader, cluster.members.map((m) => m.role))

  const wasHeld: boolean = await lease.release()
  console.log(wasHeld)

  const maybe: Lease | null = await client.tryAcquire('typed/job', { shared: true, limit: 3 })
  if (maybe) await maybe[Symbol.asyncDispose]()

  const doubled: number = await client.withLock('typed/job', { waitMs: 1000 }, async (l) => Number(l.token) * 2)
  const plain: string = await client.withLock('typed/job', (l) => l.name)
  console.log(doubled, plain)

  try {
    await client.acquire('typed/job', { waitMs: 0 })
  } catch (e) {
    if (e instanceof LockTimeout) console.log('busy', e.code)
    else if (e instanceof InvalidArgument) console.log('bad', e.field)
    else if (e instanceof TenureError) {
      const code: ErrorCode | string = e.code
      console.log(code)
    } else throw e
  }
  const classes = [
    LimitMismatch,
    FencedOut,
    RequestFinished,
    ResourceExhausted,
    Unauthenticated,
    PermissionDenied,
    Compacted,
    LeaseLost,
    Cancelled,
    Unavailable,
    InternalError,
  ]
  for (const code of ERROR_CODES) console.log(code, errorClasses[code].code, classes.length)

  const watchOptions: WatchOptions = { prefix: true, fromIndex: 1n, signal: AbortSignal.timeout(10_000) }
  const watch: Watch = client.watch('typed/', watchOptions)
  await watch.ready
  for await (const event of watch) {
    const e: LockEvent = event
    const kind: LockEventKind = e.kind
    const index: bigint = e.index
    const at: Date = e.at
    console.log(index, kind, e.name, e.requestId, e.token, e.owner, e.mode, e.position, at.toISOString())
    if (kind === 'RELEASED') break
  }
  const resumed = client.watch('typed/job', { fromIndex: 5 })
  const step: IteratorResult<LockEvent, undefined> = await resumed.next()
  if (!step.done) console.log(step.value.kind)
  resumed.close()
  await resumed[Symbol.asyncDispose]()
  console.log(watch.closed, resumed.closed)

  await also[Symbol.asyncDispose]()
  await client.close()
}

main().catch((e: unknown) => {
  console.error(e)
  process.exitCode = 1
})
