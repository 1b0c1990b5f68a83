'use strict'
// The whole API against one real 3-node cluster that no test here disturbs.

const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { after, before, describe, test } = require('node:test')

const tenure = require('..')
const { Client, FencedOut, InvalidArgument, LeaseLost, LimitMismatch, LockTimeout, TenureError } = tenure
const { Cluster, eventually, within, lockName } = require('./cluster.js')

const T = { timeout: 60_000 }
let cluster
let client

before(async () => {
  cluster = await Cluster.start()
  client = new Client({ endpoints: cluster.endpoints, owner: 'node-tests' })
})

after(async () => {
  await client?.close().catch(() => {})
  await cluster?.close()
})

const holders = async (name) => (await client.describe(name)).holders
const waiters = async (name) => (await client.describe(name)).waiters

describe('module', () => {
  test('require and import give the same API, with a class per error code', T, async () => {
    const esm = await import('tenure')
    assert.equal(esm.Client, Client)
    assert.equal(esm.default.Client, Client)
    assert.deepEqual(Object.keys(tenure.errorClasses).sort(), [...tenure.ERROR_CODES].sort())
    for (const code of tenure.ERROR_CODES) {
      const cls = tenure.errorClasses[code]
      const e = new cls('m')
      assert.ok(e instanceof TenureError && e instanceof Error)
      assert.equal(e.code, code)
      assert.equal(e.name, cls.name)
    }
    assert.equal(tenure.errorClasses.TIMEOUT, LockTimeout)
    assert.equal(tenure.DEFAULT_ENDPOINT, 'http://127.0.0.1:7070')
    assert.equal(typeof Symbol.asyncDispose, 'symbol')
  })
})

describe('Client', () => {
  test('takes endpoints as an array or a string, and TENURE_ENDPOINTS by default', T, async () => {
    const fromString = new Client({ endpoints: cluster.endpoints, timeoutMs: 3000, owner: 'me' })
    assert.equal(fromString.owner, 'me')
    assert.equal(fromString.timeoutMs, 3000)
    assert.equal((await fromString.clusterStatus()).hasQuorum, true)
    const saved = process.env.TENURE_ENDPOINTS
    process.env.TENURE_ENDPOINTS = cluster.endpoints
    try {
      const fromEnv = new Client()
      assert.match(fromEnv.owner, /:\d+$/, 'default owner is hostname:pid')
      assert.equal(fromEnv.timeoutMs, 5000)
      const lease = await fromEnv.tryAcquire(lockName('env'))
      assert.ok(lease)
      await lease.release()
      await fromEnv.close()
    } finally {
      if (saved === undefined) delete process.env.TENURE_ENDPOINTS
      else process.env.TENURE_ENDPOINTS = saved
    }
    await fromString.close()
  })

  test('bad settings are InvalidArgument naming the field', T, () => {
    assert.throws(() => new Client({ timeoutMs: -1 }), (e) => e instanceof InvalidArgument && e.field === 'timeoutMs')
    assert.throws(() => new Client({ timeoutMs: 0 }), (e) => e instanceof InvalidArgument && e.code === 'INVALID_ARGUMENT')
    assert.throws(() => new Client({ owner: 'x'.repeat(300) }), (e) => e instanceof InvalidArgument && e.field === 'owner')
    assert.throws(() => new Client({ endpoints: 42 }), (e) => e instanceof InvalidArgument && e.field === 'endpoints')
  })

  test('an unreachable cluster is Unavailable once the call timeout passes', T, async () => {
    const lonely = new Client({ endpoints: '127.0.0.1:1', timeoutMs: 300 })
    await assert.rejects(lonely.clusterStatus(), (e) => e instanceof tenure.Unavailable && e.code === 'UNAVAILABLE')
  })
})

describe('acquire, tryAcquire and Lease', () => {
  test('a lease has its name, bigint token, request id, times, and releases once', T, async () => {
    const name = lockName('lease')
    const before = Date.now()
    const lease = await client.acquire(name, { ttlMs: 10_000, waitMs: 5000 })
    assert.ok(lease instanceof tenure.Lease)
    assert.equal(lease.name, name)
    assert.equal(typeof lease.token, 'bigint')
    assert.ok(lease.token > 0n)
    assert.equal(typeof lease.requestId, 'string')
    assert.equal(lease.owner, 'node-tests')
    assert.equal(lease.mode, 'EXCLUSIVE')
    assert.equal(lease.ttlMs, 10_000)
    assert.ok(lease.expiresAt instanceof Date && lease.grantedAt instanceof Date)
    assert.ok(lease.expiresAt.getTime() > before, 'expiresAt is in the future')
    assert.ok(lease.expiresAt.getTime() <= Date.now() + 10_000)
    assert.equal(lease.held, true)
    assert.ok(lease.lost instanceof AbortSignal)
    assert.equal(lease.lost.aborted, false)
    assert.equal(lease.lostReason, null)
    assert.deepEqual(lease.fence, { name, token: lease.token })

    const [h] = await holders(name)
    assert.equal(h.requestId, lease.requestId)
    assert.equal(h.token, lease.token)
    assert.equal(h.owner, 'node-tests')
    assert.ok(h.grantedAt instanceof Date && h.expiresAt instanceof Date)

    await lease.renew()
    assert.equal(await lease.release(), true)
    assert.equal(lease.held, false)
    assert.equal(await lease.release(), false, 'release is idempotent')
    assert.equal(lease.lost.aborted, false, 'a release is not a loss')
    await assert.rejects(lease.renew(), LeaseLost)
    assert.deepEqual(await holders(name), [])
  })

  test('tryAcquire resolves to null when busy, and tokens increase', T, async () => {
    const name = lockName('try')
    const first = await client.tryAcquire(name)
    assert.ok(first)
    assert.equal(await client.tryAcquire(name), null)
    await first.release()
    const second = await client.tryAcquire(name, { ttlMs: 5000 })
    assert.ok(second && second.token > first.token)
    await second.release()
  })

  test('a wait that runs out is LockTimeout and leaves no waiter', T, async () => {
    const name = lockName('timeout')
    const holder = await client.acquire(name)
    const started = Date.now()
    await assert.rejects(client.acquire(name, { waitMs: 300 }), (e) => e instanceof LockTimeout && e.code === 'TIMEOUT')
    assert.ok(Date.now() - started >= 250)
    await assert.rejects(client.acquire(name, { waitMs: 0 }), LockTimeout)
    assert.deepEqual(await waiters(name), [])
    await holder.release()
  })

  test('a waiter is granted when the holder releases', T, async () => {
    const name = lockName('queue')
    const holder = await client.acquire(name)
    const other = new Client({ endpoints: cluster.endpoints, owner: 'waiter' })
    const waiting = other.acquire(name, { waitMs: 20_000 })
    await eventually('the waiter to queue', async () => (await waiters(name)).length === 1)
    const [w] = await waiters(name)
    assert.equal(w.owner, 'waiter')
    assert.equal(w.position, 1, 'positions count from 1')
    assert.ok(w.enqueuedAt instanceof Date)
    await holder.release()
    const lease = await within(10_000, waiting, 'the waiter')
    assert.equal(lease.requestId, w.requestId)
    assert.ok(lease.token > holder.token)
    await lease.release()
    await other.close()
  })

  test('shared leases coexist up to the limit; a different limit is LimitMismatch', T, async () => {
    const name = lockName('shared')
    const a = await client.acquire(name, { shared: true, limit: 2 })
    const b = await client.acquire(name, { shared: true, limit: 2 })
    assert.equal(a.mode, 'SHARED')
    assert.notEqual(a.token, b.token)
    assert.equal(await client.tryAcquire(name, { shared: true, limit: 2 }), null)
    await assert.rejects(client.tryAcquire(name, { shared: true, limit: 3 }), LimitMismatch)
    assert.equal(await client.tryAcquire(name), null, 'exclusive waits for the readers')
    const d = await client.describe(name)
    assert.equal(d.limit, 2)
    assert.equal(d.holders.length, 2)
    await a.release()
    await b.release()
  })

  test('bad options are InvalidArgument naming the field, locally or from the server', T, async () => {
    const name = lockName('bad')
    const field = (f) => (e) => e instanceof InvalidArgument && e.field === f
    await assert.rejects(client.acquire(name, { ttlMs: -5 }), field('ttlMs'))
    await assert.rejects(client.acquire(name, { waitMs: Number.NaN }), field('waitMs'))
    await assert.rejects(client.acquire(name, { lockDelayMs: 'soon' }), field('lockDelayMs'))
    await assert.rejects(client.acquire(name, { limit: 2 }), field('limit'))
    await assert.rejects(client.acquire(name, { signal: {} }), field('signal'))
    await assert.rejects(client.acquire(42), field('name'))
    await assert.rejects(client.acquire(''), field('name'))
    // Checked by the server: the field name comes from its message.
    await assert.rejects(client.acquire(name, { lockDelayMs: 120_000 }), (e) => e instanceof InvalidArgument && /lock_delay/.test(e.field))
    await assert.rejects(client.acquire(name, { ttlMs: 10 }), InvalidArgument)
    assert.deepEqual(await holders(name), [])
  })

  test('lockDelayMs within bounds is accepted', T, async () => {
    const lease = await client.acquire(lockName('delay'), { ttlMs: 5000, lockDelayMs: 1000 })
    assert.equal(await lease.release(), true)
  })

  test('[Symbol.asyncDispose] releases a lease, and closes a client', T, async () => {
    const name = lockName('dispose')
    const lease = await client.acquire(name)
    assert.equal(typeof lease[Symbol.asyncDispose], 'function')
    // What `await using lease = …` does at the end of its block (the syntax needs Node 24).
    await lease[Symbol.asyncDispose]()
    assert.equal(lease.held, false)
    assert.deepEqual(await holders(name), [])

    const own = new Client({ endpoints: cluster.endpoints })
    const held = await own.acquire(name)
    await own[Symbol.asyncDispose]()
    assert.equal(held.held, false)
    assert.deepEqual(await holders(name), [])
  })

  test('close() releases everything the client holds; the client stays usable', T, async () => {
    const own = new Client({ endpoints: cluster.endpoints })
    const names = [lockName('close'), lockName('close')]
    const leases = await Promise.all(names.map((n) => own.acquire(n)))
    await own.close()
    for (const l of leases) assert.equal(l.held, false)
    for (const n of names) assert.deepEqual(await holders(n), [])
    const again = await own.acquire(names[0])
    await again.release()
  })
})

describe('withLock', () => {
  test('runs the function under the lock and releases on return', T, async () => {
    const name = lockName('with')
    const result = await client.withLock(name, { ttlMs: 10_000, waitMs: 5000 }, async (lease) => {
      assert.equal(lease.held, true)
      assert.equal((await holders(name))[0].requestId, lease.requestId)
      return 42
    })
    assert.equal(result, 42)
    assert.deepEqual(await holders(name), [])
    assert.equal(await client.withLock(name, (lease) => lease.name), name, 'options may be omitted')
  })

  test('releases on throw and rejects with the same error', T, async () => {
    const name = lockName('with-throw')
    const boom = new Error('boom')
    let seen
    await assert.rejects(
      client.withLock(name, {}, async (lease) => {
        seen = lease
        throw boom
      }),
      (e) => e === boom,
    )
    assert.equal(seen.held, false)
    assert.deepEqual(await holders(name), [])
  })

  test('rejects without running the function when the lock is not obtained', T, async () => {
    const name = lockName('with-busy')
    const holder = await client.acquire(name)
    let ran = false
    await assert.rejects(
      client.withLock(name, { waitMs: 100 }, () => {
        ran = true
      }),
      LockTimeout,
    )
    assert.equal(ran, false)
    await holder.release()
  })

  test('concurrent withLock calls on one lock never overlap', T, async () => {
    const name = lockName('mutex')
    const clients = [client, new Client({ endpoints: cluster.endpoints }), new Client({ endpoints: cluster.endpoints })]
    let inside = 0
    let maxInside = 0
    const tokens = []
    const runs = []
    for (let i = 0; i < 12; i++) {
      const c = clients[i % clients.length]
      runs.push(
        c.withLock(name, { ttlMs: 10_000, waitMs: 30_000 }, async (lease) => {
          inside += 1
          maxInside = Math.max(maxInside, inside)
          tokens.push(lease.token)
          // Real asynchronous work under the lock: a fenced write, then a read.
          await client.kv.put(`${name}/counter`, String(tokens.length), { ifFence: lease })
          assert.equal((await client.kv.get(`${name}/counter`)).value.toString(), String(tokens.length))
          inside -= 1
        }),
      )
    }
    await within(50_000, Promise.all(runs), 'the withLock calls')
    assert.equal(maxInside, 1)
    assert.equal(tokens.length, 12)
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], 'tokens increase with each grant')
    assert.deepEqual(await holders(name), [])
    await Promise.all(clients.slice(1).map((c) => c.close()))
  })
})

describe('AbortSignal', () => {
  test('aborting a waiting acquire rejects with signal.reason and leaves no holder or waiter', T, async () => {
    const name = lockName('abort')
    const holder = await client.acquire(name)
    const controller = new AbortController()
    const waiter = new Client({ endpoints: cluster.endpoints, owner: 'aborted' })
    const waiting = waiter.acquire(name, { signal: controller.signal })
    await eventually('the waiter to queue', async () => (await waiters(name)).length === 1)
    const reason = new Error('not needed any more')
    controller.abort(reason)
    await assert.rejects(within(10_000, waiting, 'the aborted acquire'), (e) => e === reason)
    await eventually('the waiter to be withdrawn', async () => (await waiters(name)).length === 0)
    await holder.release()
    // The withdrawn request is not granted the lock afterwards: no ghost holder.
    await eventually('the lock to be free', async () => !(await client.describe(name)).exists)
    const next = await client.tryAcquire(name)
    assert.ok(next, 'the lock is free')
    await next.release()
    await waiter.close()
  })

  test('an aborted signal rejects at once; AbortSignal.timeout ends a wait', T, async () => {
    const name = lockName('abort-early')
    const reason = new Error('already')
    await assert.rejects(client.acquire(name, { signal: AbortSignal.abort(reason) }), (e) => e === reason)
    assert.equal((await client.describe(name)).exists, false)

    const holder = await client.acquire(name)
    await assert.rejects(
      client.withLock(name, { signal: AbortSignal.timeout(200) }, () => assert.fail('not under the lock')),
      (e) => e.name === 'TimeoutError',
    )
    await eventually('no waiter', async () => (await waiters(name)).length === 0)
    await holder.release()
    assert.deepEqual(await holders(name), [])
  })

  test('aborting many waiters at once leaves the queue empty', T, async () => {
    const name = lockName('abort-many')
    const holder = await client.acquire(name)
    const controller = new AbortController()
    const waiting = Array.from({ length: 5 }, () => client.acquire(name, { signal: controller.signal }))
    await eventually('5 waiters', async () => (await waiters(name)).length === 5)
    controller.abort()
    const results = await within(10_000, Promise.allSettled(waiting), 'the aborted acquires')
    for (const r of results) {
      assert.equal(r.status, 'rejected')
      assert.equal(r.reason.name, 'AbortError')
    }
    await eventually('the waiters to be withdrawn', async () => (await waiters(name)).length === 0)
    await holder.release()
    await eventually('the lock to be free', async () => !(await client.describe(name)).exists)
  })
})

describe('fencing and KV', () => {
  test("a stale token's fenced write rejects with FencedOut", T, async () => {
    const name = lockName('fence')
    const key = `${name}/data`
    const first = await client.acquire(name)
    const rev = await client.kv.put(key, 'v1', { ifFence: first })
    assert.equal(typeof rev, 'bigint')
    await first.release()
    const second = await client.acquire(name)
    assert.ok(second.token > first.token)

    const stale = { name, token: first.token }
    const fencedOut = (e) => e instanceof FencedOut && e instanceof TenureError && e.code === 'FENCED_OUT'
    await assert.rejects(client.kv.put(key, 'stale', { ifFence: stale }), fencedOut)
    await assert.rejects(client.kv.put(key, 'stale', { ifFence: first }), fencedOut)
    await assert.rejects(client.kv.delete(key, { ifFence: stale }), fencedOut)
    assert.equal((await client.kv.get(key)).value.toString(), 'v1', 'the stale writes changed nothing')

    await client.kv.put(key, Buffer.from('v2'), { ifFence: second })
    assert.equal(await client.kv.delete(key, { ifFence: { name, token: Number(second.token) } }), true)
    await second.release()
  })

  test('validateFence tells current tokens from stale ones', T, async () => {
    const name = lockName('validate')
    const lease = await client.acquire(name)
    const now = await client.validateFence(name, lease.token)
    assert.equal(now.current, true)
    assert.deepEqual(now.currentTokens, [lease.token])
    assert.equal((await client.validateFence(name, lease.token - 1n)).current, false)
    await lease.release()
    const later = await client.validateFence(name, Number(lease.token))
    assert.equal(later.current, false)
    assert.deepEqual(later.currentTokens, [])
    await assert.rejects(client.validateFence(name, -1), InvalidArgument)
    await assert.rejects(client.validateFence(name, 1.5), InvalidArgument)
  })

  test('kv get, put, delete and list', T, async () => {
    const prefix = `${lockName('kv')}/`
    assert.equal(await client.kv.get(`${prefix}missing`), null)
    const r1 = await client.kv.put(`${prefix}a`, 'alpha')
    const r2 = await client.kv.put(Buffer.from(`${prefix}b`), new Uint8Array([1, 2, 3]))
    assert.ok(r2 > r1)
    const a = await client.kv.get(`${prefix}a`)
    assert.ok(Buffer.isBuffer(a.key) && Buffer.isBuffer(a.value))
    assert.equal(a.key.toString(), `${prefix}a`)
    assert.equal(a.value.toString(), 'alpha')
    assert.equal(a.revision, r1)
    const all = await client.kv.list(prefix)
    assert.deepEqual(all.map((e) => e.key.toString()), [`${prefix}a`, `${prefix}b`])
    assert.deepEqual([...all[1].value], [1, 2, 3])
    assert.equal(await client.kv.delete(`${prefix}a`), true)
    assert.equal(await client.kv.delete(`${prefix}a`), false)
    assert.equal((await client.kv.list(prefix)).length, 1)
    await assert.rejects(client.kv.put(42, 'x'), (e) => e instanceof InvalidArgument && e.field === 'key')
  })
})

describe('describe, list and clusterStatus', () => {
  test('describe shows holders and waiters in order; list counts them', T, async () => {
    const prefix = lockName('list')
    const name = `${prefix}/x`
    assert.deepEqual(await client.describe(name), {
      name,
      exists: false,
      holders: [],
      waiters: [],
      limit: 0,
      delayedUntil: null,
    })
    const holder = await client.acquire(name)
    const other = new Client({ endpoints: cluster.endpoints, owner: 'second' })
    const waiting = other.acquire(name)
    await eventually('the waiter', async () => (await waiters(name)).length === 1)
    const d = await client.describe(name)
    assert.equal(d.exists, true)
    assert.deepEqual(d.holders.map((h) => h.owner), ['node-tests'])
    assert.deepEqual(d.waiters.map((w) => w.owner), ['second'])
    const listed = await client.list(prefix)
    assert.deepEqual(listed, [{ name, holders: 1, waiters: 1, mode: 'EXCLUSIVE', limit: 0 }])
    assert.ok((await client.list()).some((l) => l.name === name), 'the default prefix lists every lock')
    await holder.release()
    const lease = await within(10_000, waiting, 'the waiter')
    await lease.release()
    await other.close()
  })

  test('clusterStatus reports the leader and three members', T, async () => {
    const s = await client.clusterStatus()
    assert.equal(s.hasQuorum, true)
    assert.equal(s.members.length, 3)
    assert.equal(typeof s.leaderId, 'number')
    assert.ok(s.members.some((m) => m.id === s.leaderId && m.role === 'leader'))
    assert.ok(s.term >= 1 && s.commitIndex >= 1 && s.quorumSize === 2)
  })
})

describe('process lifetime', () => {
  test('a script holding a lease it never released still exits', T, () => {
    const code = `
      const { Client } = require(${JSON.stringify(path.resolve(__dirname, '..'))})
      const c = new Client({ endpoints: process.env.EPS })
      c.acquire(process.env.NAME).then((lease) => { console.log('holding', lease.token) })
    `
    const name = lockName('exit')
    const done = spawnSync(process.execPath, ['-e', code], {
      env: { ...process.env, EPS: cluster.endpoints, NAME: name },
      encoding: 'utf8',
      timeout: 30_000,
    })
    assert.equal(done.status, 0, done.stderr)
    assert.match(done.stdout, /holding \d+/)
  })
})
