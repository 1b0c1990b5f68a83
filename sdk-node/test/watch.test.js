'use strict'
// client.watch(): committed lock events as an async iterator, against a real 3-node cluster.

const assert = require('node:assert/strict')
const { after, before, describe, test } = require('node:test')

const { Client, Compacted, InvalidArgument, Watch } = require('..')
const { Cluster, within, lockName } = require('./cluster.js')

const T = { timeout: 60_000 }
/** The longest any test waits for an event it expects. */
const EVENT_WAIT_MS = 15_000
let cluster
let client

before(async () => {
  cluster = await Cluster.start()
  client = new Client({ endpoints: cluster.endpoints, owner: 'node-watch-tests' })
})

after(async () => {
  await client?.close().catch(() => {})
  await cluster?.close()
})

/** The next `n` events of `watch`, each within EVENT_WAIT_MS. */
async function take(watch, n) {
  const events = []
  for (let i = 0; i < n; i++) {
    const step = await within(EVENT_WAIT_MS, watch.next(), `event ${i + 1} of ${n}`)
    assert.equal(step.done, false, `the watch ended after ${i} of ${n} events`)
    events.push(step.value)
  }
  return events
}

/** Runs `fn(watch)` and closes the watch however it ends, so no pending step keeps node alive. */
async function using(watch, fn) {
  try {
    return await fn(watch)
  } finally {
    watch.close()
  }
}

describe('watch', () => {
  test('sees acquired, released, acquired in order, with increasing index and token', T, async () => {
    const name = lockName('watch')
    const watch = client.watch(name)
    assert.ok(watch instanceof Watch)
    await within(EVENT_WAIT_MS, watch.ready, 'the watch to start')
    const first = await client.acquire(name)
    await first.release()
    const second = await client.acquire(name)
    const events = []
    await within(EVENT_WAIT_MS, (async () => {
      for await (const event of watch) {
        events.push(event)
        if (events.length === 3) break // calls watch.return(): the watch is closed
      }
    })(), 'three events')
    assert.equal(watch.closed, true)
    assert.deepEqual(await watch.next(), { done: true, value: undefined })

    const [granted, released, regranted] = events
    assert.deepEqual(events.map((e) => e.kind), ['GRANTED', 'RELEASED', 'GRANTED'])
    assert.deepEqual(events.map((e) => e.forced), [false, false, false])
    assert.ok(events.every((e) => e.name === name))
    assert.ok(granted.index < released.index && released.index < regranted.index, 'increasing index')
    assert.equal(typeof granted.index, 'bigint')
    assert.deepEqual([granted.token, released.token, regranted.token], [first.token, first.token, second.token])
    assert.ok(regranted.token > granted.token)
    assert.equal(granted.requestId, first.requestId)
    assert.equal(regranted.requestId, second.requestId)
    assert.equal(granted.owner, 'node-watch-tests')
    assert.equal(granted.mode, 'EXCLUSIVE')
    assert.equal(granted.position, 0)
    assert.ok(granted.at instanceof Date && granted.at <= regranted.at)
    await second.release()
  })

  test('a watch reopened from the next index gets exactly the events that followed', T, async () => {
    const name = lockName('resume')
    const seen = await using(client.watch(name), async (watch) => {
      await watch.ready
      for (let i = 0; i < 3; i++) await (await client.acquire(name)).release()
      return take(watch, 6)
    })
    assert.deepEqual(seen.map((e) => e.kind), ['GRANTED', 'RELEASED', 'GRANTED', 'RELEASED', 'GRANTED', 'RELEASED'])
    for (const cut of [0, 2, 3]) {
      // A bigint index, or a number: both are accepted.
      const fromIndex = cut === 2 ? Number(seen[cut].index) + 1 : seen[cut].index + 1n
      await using(client.watch(name, { fromIndex }), async (resumed) => {
        assert.deepEqual(await take(resumed, seen.length - cut - 1), seen.slice(cut + 1), `resumed after ${cut}`)
        // Then the live events, with no repeat in between.
        const lease = await client.acquire(name)
        await lease.release()
        const live = await take(resumed, 2)
        assert.deepEqual(live.map((e) => [e.kind, e.token]), [['GRANTED', lease.token], ['RELEASED', lease.token]])
        assert.ok(seen.at(-1).index < live[0].index && live[0].index < live[1].index)
        seen.push(...live)
      })
    }
  })

  test('a prefix watch sees every lock under it and no other', T, async () => {
    const base = lockName('prefix')
    const events = await using(client.watch(`${base}/`, { prefix: true }), async (watch) => {
      await watch.ready
      for (const n of [`${base}-other`, `${base}/a`, `${base}/b`]) await (await client.acquire(n)).release()
      return take(watch, 4)
    })
    assert.deepEqual(events.map((e) => [e.kind, e.name]), [
      ['GRANTED', `${base}/a`],
      ['RELEASED', `${base}/a`],
      ['GRANTED', `${base}/b`],
      ['RELEASED', `${base}/b`],
    ])
  })

  test('close(), return() and Symbol.asyncDispose end a waiting step', T, async () => {
    const name = lockName('close')
    for (const end of [(w) => w.close(), (w) => w.return(), (w) => w[Symbol.asyncDispose]()]) {
      const watch = client.watch(name)
      await watch.ready
      const step = watch.next()
      await end(watch)
      assert.deepEqual(await within(10_000, step, 'the closed step'), { done: true, value: undefined })
      assert.equal(watch.closed, true)
      watch.close() // idempotent
    }
    // Closed before it started: nothing is delivered, and ready resolves.
    const early = client.watch(name)
    early.close()
    await within(10_000, early.ready, 'ready of a watch closed early')
    assert.deepEqual(await early.next(), { done: true, value: undefined })
  })

  test('an AbortSignal ends a watch: its steps reject with signal.reason', T, async () => {
    const name = lockName('abort')
    const controller = new AbortController()
    const watch = client.watch(name, { signal: controller.signal })
    await watch.ready
    const step = watch.next()
    const reason = new Error('enough')
    controller.abort(reason)
    await assert.rejects(within(10_000, step, 'the aborted step'), (e) => e === reason)
    await assert.rejects(watch.next(), (e) => e === reason)
    assert.equal(watch.closed, true)

    const already = client.watch(name, { signal: AbortSignal.abort(reason) })
    await assert.rejects(already.ready, (e) => e === reason)
    await assert.rejects(already.next(), (e) => e === reason)

    const timed = client.watch(name, { signal: AbortSignal.timeout(300) })
    await assert.rejects(
      within(10_000, (async () => {
        for await (const event of timed) assert.fail(`no event expected, got ${event.kind}`)
      })(), 'the timed-out watch'),
      (e) => e.name === 'TimeoutError',
    )
  })

  test('a start older than the history is Compacted', T, async () => {
    const short = await Cluster.start(3, ['--watch-history', '10'])
    const c = new Client({ endpoints: short.endpoints })
    try {
      const name = lockName('compacted')
      const first = await using(c.watch(name), async (watch) => {
        await watch.ready
        for (let i = 0; i < 15; i++) await (await c.acquire(name)).release()
        return (await take(watch, 1))[0]
      })
      const old = c.watch(name, { fromIndex: first.index })
      await assert.rejects(within(10_000, old.ready, 'ready'), (e) => e instanceof Compacted && e.code === 'COMPACTED')
      await assert.rejects(old.next(), (e) => e instanceof Compacted)
      assert.equal(old.closed, true)
      // A watch from now still works.
      await using(c.watch(name), async (live) => {
        await live.ready
        await (await c.acquire(name)).release()
        assert.deepEqual((await take(live, 2)).map((e) => e.kind), ['GRANTED', 'RELEASED'])
      })
    } finally {
      await c.close()
      await short.close()
    }
  })

  test('bad arguments are InvalidArgument naming the field, locally or from the server', T, async () => {
    const bad = (field) => (e) => e instanceof InvalidArgument && e.code === 'INVALID_ARGUMENT' && e.field === field
    assert.throws(() => client.watch(42), bad('name'))
    assert.throws(() => client.watch(undefined), bad('name'))
    assert.throws(() => client.watch('n', 'x'), bad('options'))
    assert.throws(() => client.watch('n', { prefix: 'yes' }), bad('prefix'))
    assert.throws(() => client.watch('n', { fromIndex: -1 }), bad('fromIndex'))
    assert.throws(() => client.watch('n', { fromIndex: -1n }), bad('fromIndex'))
    assert.throws(() => client.watch('n', { fromIndex: 2n ** 64n }), bad('fromIndex'))
    assert.throws(() => client.watch('n', { fromIndex: 1.5 }), bad('fromIndex'))
    assert.throws(() => client.watch('n', { fromIndex: '1' }), bad('fromIndex'))
    assert.throws(() => client.watch('n', { signal: {} }), bad('signal'))

    const empty = client.watch('')
    await assert.rejects(within(10_000, empty.ready, 'ready'), bad('name'))
    await assert.rejects(empty.next(), bad('name'))
    assert.equal(empty.closed, true)
    const long = client.watch('x'.repeat(600))
    await assert.rejects(within(10_000, long.next(), 'next'), bad('name'))
  })
})
