#!/usr/bin/env node
'use strict'
// A worker that takes jobs under a lock and writes each result with a fenced KV put.
//
// Run several at once; each job is done exactly once, by whichever worker locks it first:
//
//   export TENURE_ENDPOINTS=127.0.0.1:7071,127.0.0.1:7072,127.0.0.1:7073
//   node examples/worker.js --name a & node examples/worker.js --name b & wait
//
// Jobs are numbered 0..N-1 under a prefix. For each one the worker tries the lock
// `<prefix>/<n>` (never waiting: another worker has it), skips it if a result is already
// stored, and otherwise computes the result and stores it at `<prefix>/<n>/result` with
// `ifFence: lease`: if the lease was lost meanwhile and someone else took the job, the write is
// rejected with FencedOut instead of overwriting the newer holder's work.

const crypto = require('node:crypto')
const { parseArgs } = require('node:util')
const { setTimeout: sleep } = require('node:timers/promises')

const { Client, FencedOut } = require('tenure')

/** The "work": a digest of the job number, and a little time spent on it. */
async function compute(job, signal) {
  await sleep(20, undefined, { signal })
  return crypto.createHash('sha256').update(String(job)).digest('hex').slice(0, 16)
}

/** Does every job no one else has done or is doing; resolves to the ones this worker did. */
async function run(client, name, prefix, jobs) {
  const done = []
  for (let job = 0; job < jobs; job++) {
    const lease = await client.tryAcquire(`${prefix}/${job}`, { ttlMs: 10_000 })
    if (lease === null) continue // another worker holds this job
    try {
      const resultKey = `${prefix}/${job}/result`
      if ((await client.kv.get(resultKey)) !== null) continue // done already
      // lease.lost aborts the work if the lease is lost meanwhile.
      const result = await compute(job, lease.lost)
      const record = JSON.stringify({ result, worker: name, token: String(lease.token) })
      await client.kv.put(resultKey, record, { ifFence: lease })
      done.push(job)
    } catch (e) {
      // Lost the lease while working, or someone else holds the job now: their write wins.
      if (!(e instanceof FencedOut) && !lease.lost.aborted) throw e
    } finally {
      await lease.release()
    }
  }
  return done
}

async function main() {
  const { values } = parseArgs({
    options: {
      name: { type: 'string', default: 'worker' },
      prefix: { type: 'string', default: 'jobs' },
      jobs: { type: 'string', default: '20' },
    },
  })
  const client = new Client({ owner: `worker-${values.name}` })
  try {
    const done = await run(client, values.name, values.prefix, Number(values.jobs))
    console.log(JSON.stringify({ worker: values.name, done }))
  } finally {
    await client.close()
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
