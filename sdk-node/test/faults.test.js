'use strict'
// Faults on a cluster of this file's own: a leader SIGKILL while clients wait, and leases lost
// because no node can confirm their renewals (every node frozen with SIGSTOP).

const assert = require('node:assert/strict')
const { after, before, test } = require('node:test')

const { Client, LeaseLost } = require('..')
const { Cluster, eventually, within, lockName } = require('./cluster.js')

const T = { timeout: 90_000 }
let cluster

before(async () => {
  cluster = await Cluster.start()
})

after(async () => {
  await cluster?.close()
})

function freezeAll() {
  for (const n of cluster.nodes) cluster.stop(n.id)
}

async function thawAll() {
  for (const n of cluster.nodes) cluster.cont(n.id)
  await cluster.waitReady()
}

/** Resolves with the signal's reason once it aborts. */
function aborted(signal) {
  if (signal.aborted) return Promise.resolve(signal.reason)
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }))
}

test("a leader SIGKILL while waiting keeps the waiters' places", T, async () => {
  const name = lockName('failover')
  const clients = Object.fromEntries(
    ['holder', 'first', 'second'].map((o) => [o, new Client({ endpoints: cluster.endpoints, owner: o })]),
  )
  const watcher = clients.holder
  const owners = async () => (await watcher.describe(name)).waiters.map((w) => w.owner)
  try {
    const holder = await watcher.acquire(name, { ttlMs: 30_000 })
    const granted = []
    const waiting = {}
    for (const o of ['first', 'second']) {
      waiting[o] = clients[o].acquire(name, { ttlMs: 30_000, waitMs: 60_000 }).then((lease) => {
        granted.push(o)
        return lease
      })
      await eventually(`${o} to queue`, async () => (await owners()).at(-1) === o)
    }
    const before = (await watcher.describe(name)).waiters
    assert.deepEqual(before.map((w) => w.owner), ['first', 'second'])

    const oldLeader = await cluster.leader()
    await cluster.kill(oldLeader)
    const newLeader = await cluster.waitReady()
    assert.notEqual(newLeader, oldLeader)

    // Both waiters kept their requests (same ids) and their order across the failover.
    const afterKill = (await watcher.describe(name)).waiters
    assert.deepEqual(
      afterKill.map((w) => [w.owner, w.requestId]),
      before.map((w) => [w.owner, w.requestId]),
    )
    assert.deepEqual(granted, [])

    await holder.release()
    const first = await within(20_000, waiting.first, 'the first waiter')
    assert.equal(first.requestId, before[0].requestId)
    assert.deepEqual(granted, ['first'])
    assert.deepEqual(await owners(), ['second'])
    await first.release()
    const second = await within(20_000, waiting.second, 'the second waiter')
    assert.equal(second.requestId, before[1].requestId)
    assert.ok(first.token < second.token)
    await second.release()
  } finally {
    for (const c of Object.values(clients)) await c.close().catch(() => {})
    await cluster.heal()
  }
})

test('lease.lost aborts, with a LeaseLost reason, when no renewal can be confirmed', T, async () => {
  const name = lockName('lost')
  const client = new Client({ endpoints: cluster.endpoints, timeoutMs: 1000 })
  try {
    const lease = await client.acquire(name, { ttlMs: 2000 })
    assert.equal(lease.held, true)
    assert.equal(lease.lost.aborted, false)
    const frozenAt = Date.now()
    freezeAll()
    let reason
    try {
      // Lost once 90% of the TTL has passed since the last confirmed renewal: <= 1.8 s.
      reason = await within(10_000, aborted(lease.lost), 'lease.lost')
    } finally {
      await thawAll()
    }
    const lostAfter = Date.now() - frozenAt
    assert.ok(lostAfter <= 2500, `lost after ${lostAfter} ms`)
    assert.ok(reason instanceof LeaseLost, String(reason))
    assert.equal(reason.code, 'LEASE_LOST')
    assert.equal(lease.held, false)
    assert.ok(lease.lostReason)
    await assert.rejects(lease.renew(), LeaseLost)
    await lease.release()
    await eventually('the lost lease to be gone', async () => (await client.describe(name)).holders.length === 0)
  } finally {
    await client.close().catch(() => {})
    await cluster.heal()
  }
})

test('withLock rejects with LeaseLost when the lease was lost while the function ran', T, async () => {
  const name = lockName('lost-with')
  const client = new Client({ endpoints: cluster.endpoints, timeoutMs: 1000 })
  try {
    await assert.rejects(
      client.withLock(name, { ttlMs: 2000 }, async (lease) => {
        freezeAll()
        try {
          await within(10_000, aborted(lease.lost), 'lease.lost')
        } finally {
          await thawAll()
        }
        return 'finished'
      }),
      LeaseLost,
    )
    await eventually('the lost lease to be gone', async () => (await client.describe(name)).holders.length === 0)
  } finally {
    await client.close().catch(() => {})
    await cluster.heal()
  }
})
