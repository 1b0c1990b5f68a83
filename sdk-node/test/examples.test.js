'use strict'
// The README's examples, as written, and examples/worker.js, against a cluster of this file's own.

const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { after, before, test } = require('node:test')

const { Client } = require('..')
const { Cluster, within, lockName } = require('./cluster.js')

const SDK = path.resolve(__dirname, '..')
const MARKER = '<!-- node-example:'
const T = { timeout: 120_000 }
let cluster
let project

before(async () => {
  cluster = await Cluster.start()
  // A project that depends on the package, so `require('tenure')` resolves as in a user's code.
  project = fs.mkdtempSync(path.join(os.tmpdir(), 'tenure-node-example-'))
  fs.mkdirSync(path.join(project, 'node_modules'))
  fs.symlinkSync(SDK, path.join(project, 'node_modules', 'tenure'), 'dir')
})

after(async () => {
  if (project) fs.rmSync(project, { recursive: true, force: true })
  await cluster?.close()
})

/** The ```js blocks of the README's example section (from the marker comment on). */
function readmeBlocks() {
  const text = fs.readFileSync(path.join(SDK, 'README.md'), 'utf8')
  const start = text.indexOf(MARKER)
  assert.ok(start >= 0, 'the README has the example marker')
  const section = text.slice(start, text.indexOf('\n## ', start))
  return [...section.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1])
}

/** Runs `node file args…` in `cwd` with TENURE_ENDPOINTS set; resolves to its exit and output. */
function runNode(file, args = [], cwd = project) {
  const child = spawn(process.execPath, [file, ...args], {
    cwd,
    env: { ...process.env, TENURE_ENDPOINTS: cluster.endpoints },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const done = new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
  return within(90_000, done, `node ${path.basename(file)}`).finally(() => child.kill('SIGKILL'))
}

test("the README's examples run as written", T, async () => {
  const blocks = readmeBlocks()
  assert.equal(blocks.length, 3, 'the CommonJS, the ESM and the watch example')
  const cjs = path.join(project, 'example.js')
  const esm = path.join(project, 'example.mjs')
  fs.writeFileSync(cjs, blocks[0])
  fs.writeFileSync(esm, blocks[1])

  const first = await runNode(cjs)
  assert.equal(first.code, 0, first.stderr)
  assert.match(first.stdout, /holding job-123 with fencing token \d+/)
  assert.match(first.stdout, /token \d+ > \d+: true/)
  assert.match(first.stdout, /busy, as expected/)
  assert.doesNotMatch(first.stdout, /not reached/)

  const second = await runNode(esm)
  assert.equal(second.code, 0, second.stderr)
  assert.match(second.stdout, /holding job-123 with fencing token \d+ until at least \d{4}-/)

  const watching = path.join(project, 'watch.js')
  fs.writeFileSync(watching, blocks[2])
  const third = await runNode(watching)
  assert.equal(third.code, 0, third.stderr)
  assert.match(third.stdout, /^\d+ GRANTED job-123 token=\d+\n\d+ RELEASED job-123 token=\d+\nthen GRANTED$/m)

  const client = new Client({ endpoints: cluster.endpoints })
  assert.equal((await client.describe('job-123')).exists, false, 'the examples left nothing held')
  await client.close()
})

test('workers do every job once, with fenced writes', T, async () => {
  const prefix = lockName('jobs')
  const worker = path.join(SDK, 'examples', 'worker.js')
  const runs = await Promise.all(
    ['a', 'b'].map((name) => runNode(worker, ['--name', name, '--prefix', prefix, '--jobs', '15'])),
  )
  const done = {}
  for (const r of runs) {
    assert.equal(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout)
    done[report.worker] = report.done
  }
  assert.deepEqual([...done.a, ...done.b].sort((x, y) => x - y), [...Array(15).keys()], 'every job once')
  const client = new Client({ endpoints: cluster.endpoints })
  const results = await client.kv.list(`${prefix}/`)
  assert.equal(results.length, 15)
  for (const e of results) {
    const record = JSON.parse(e.value.toString())
    const job = Number(e.key.toString().split('/').at(-2))
    assert.ok(done[record.worker].includes(job), `job ${job} was written by the worker that did it`)
  }
  await client.close()
})
