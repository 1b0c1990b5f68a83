'use strict'
// A cluster that requires bearer tokens (`tenured --auth-config`), and the CA file option.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { after, before, test } = require('node:test')

const { Client, InvalidArgument, PermissionDenied, Unauthenticated } = require('..')
const { Cluster } = require('./cluster.js')

const AUTH = `
[[token]]
name = "harness"
token = "harness-token"
prefixes = [""]
rights = ["read", "lock"]

[[token]]
name = "dashboard"
token = "reader-token"
prefixes = ["jobs/"]
rights = ["read"]
`

const T = { timeout: 60_000 }
let dir
let cluster

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenure-node-auth-'))
  fs.writeFileSync(path.join(dir, 'auth.toml'), AUTH)
  cluster = await Cluster.start(3, ['--auth-config', path.join(dir, 'auth.toml')], { bearerToken: 'harness-token' })
})

after(async () => {
  await cluster?.close()
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

test('a call without a token is UNAUTHENTICATED', T, async () => {
  const c = new Client({ endpoints: cluster.endpoints })
  try {
    await assert.rejects(c.describe('jobs/x'), Unauthenticated)
  } finally {
    await c.close()
  }
})

test('a read-only token describes within its prefix but may not lock', T, async () => {
  const c = new Client({ endpoints: cluster.endpoints, bearerToken: 'reader-token' })
  try {
    assert.deepEqual((await c.describe('jobs/x')).holders, [])
    await assert.rejects(c.tryAcquire('jobs/x'), PermissionDenied)
    await assert.rejects(c.describe('other/x'), PermissionDenied)
  } finally {
    await c.close()
  }
})

test('an unreadable CA file is an InvalidArgument naming tlsCaFile', T, () => {
  assert.throws(
    () => new Client({ endpoints: '127.0.0.1:1', tlsCaFile: path.join(os.tmpdir(), 'no-such-ca.pem') }),
    (e) => e instanceof InvalidArgument && e.field === 'tls_ca_file',
  )
  assert.throws(() => new Client({ bearerToken: 7 }), InvalidArgument)
})
