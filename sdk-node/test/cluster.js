'use strict'
// Test harness: a real 3-node tenure cluster of `tenured` processes on free loopback ports.
// Every wait polls a condition against a deadline; every node this harness started is killed
// when the cluster is closed, and when the test process exits, even after a failure.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const tenure = require('..')

const REPO = path.resolve(__dirname, '..', '..')
// Flags that make elections fast without changing semantics (as server/tests/common does).
const FAST = ['--heartbeat-ms', '50', '--election-min-ms', '300', '--election-max-ms', '600']
// Ports the documented local cluster uses; tests never take them.
const RESERVED = (port) => port >= 7070 && port <= 7083

/** The tenured binary: TENURE_BIN, else <CARGO_TARGET_DIR or target>/ci/tenured. */
function tenuredBin() {
  let bin = process.env.TENURE_BIN
  if (!bin) {
    const target = path.resolve(REPO, process.env.CARGO_TARGET_DIR || 'target')
    bin = path.join(target, 'ci', 'tenured')
  }
  try {
    fs.accessSync(bin, fs.constants.X_OK)
  } catch {
    throw new Error(
      `no tenured binary at ${bin}: build it with ` +
        '`cargo build --profile ci -p tenure-server --bin tenured`, or set TENURE_BIN',
    )
  }
  return bin
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Polls `check()` (sync or async) until it returns something other than undefined/null/false;
 * rejects after `timeoutMs`. Errors thrown by `check` count as "not yet".
 */
async function eventually(what, check, { timeoutMs = 20_000, everyMs = 20 } = {}) {
  const deadline = Date.now() + timeoutMs
  let lastError
  for (;;) {
    try {
      const v = await check()
      if (v !== undefined && v !== null && v !== false) return v
    } catch (e) {
      lastError = e
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what} (last error: ${lastError})`)
    }
    await delay(everyMs)
  }
}

/** Settles with the promise, or rejects after `ms` (a bound on every wait in the tests). */
function within(ms, promise, what = 'the operation') {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** `n` distinct free loopback ports, none in 7070..7083. */
async function freePorts(n) {
  const servers = []
  const ports = []
  try {
    while (ports.length < n) {
      const server = net.createServer()
      await new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(0, '127.0.0.1', resolve)
      })
      servers.push(server)
      const { port } = server.address()
      if (!RESERVED(port) && !ports.includes(port)) ports.push(port)
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))))
  }
  return ports
}

// Every node process any cluster in this process started and has not reaped yet.
const LIVE = new Set()
process.on('exit', () => {
  for (const proc of LIVE) {
    try {
      proc.kill('SIGCONT')
      proc.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
})

class Cluster {
  /**
   * Starts a cluster of `size` nodes, each given the extra tenured `flags`; files go under a
   * fresh temporary directory. `bearerToken` is the harness's own, for a cluster started with
   * `--auth-config`.
   */
  static async start(size = 3, flags = [], { bearerToken } = {}) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tenure-node-test-'))
    const ports = await freePorts(2 * size)
    const cluster = new Cluster(tenuredBin(), root, ports, size, flags)
    cluster.bearerToken = bearerToken
    try {
      for (const n of [...cluster.nodes].reverse()) cluster.spawn(n.id)
      await cluster.waitReady()
    } catch (e) {
      const logs = cluster.logs()
      await cluster.close()
      throw new Error(`the cluster did not start: ${e.message}\n${logs}`)
    }
    return cluster
  }

  constructor(binary, root, ports, size, flags = []) {
    this.binary = binary
    this.flags = flags
    this.root = root
    this.nodes = Array.from({ length: size }, (_, i) => ({
      id: i + 1,
      addr: `127.0.0.1:${ports[2 * i]}`,
      http: `127.0.0.1:${ports[2 * i + 1]}`,
      dataDir: path.join(root, `node${i + 1}`),
      log: path.join(root, `node${i + 1}.log`),
      proc: null,
      stopped: false,
    }))
    this.peers = this.nodes.map((n) => `${n.id}=${n.addr}`).join(',')
    this.probes = new Map()
  }

  /** Every node, comma-separated (what TENURE_ENDPOINTS takes). */
  get endpoints() {
    return this.nodes.map((n) => n.addr).join(',')
  }

  node(id) {
    return this.nodes[id - 1]
  }

  spawn(id) {
    const n = this.node(id)
    const args = ['--id', String(n.id), '--listen', n.addr, '--advertise', n.addr, '--http', n.http]
    args.push('--peers', this.peers, '--data-dir', n.dataDir, ...FAST, ...this.flags)
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TENURE_')))
    Object.assign(env, { RUST_LOG: 'info,openraft=warn', NO_COLOR: '1' })
    const log = fs.openSync(n.log, 'a')
    const proc = spawn(this.binary, args, { stdio: ['ignore', log, log], env })
    fs.closeSync(log)
    n.proc = proc
    n.stopped = false
    LIVE.add(proc)
    proc.once('exit', () => LIVE.delete(proc))
  }

  /** SIGKILL: no chance to flush or say goodbye. Resolves once the process has exited. */
  async kill(id) {
    const n = this.node(id)
    const proc = n.proc
    if (!proc) return
    n.proc = null
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((resolve) => proc.once('exit', resolve))
      if (n.stopped) proc.kill('SIGCONT')
      proc.kill('SIGKILL')
      await within(10_000, exited, `node ${id} to exit`)
    }
    n.stopped = false
  }

  /** SIGSTOP: the node freezes, sockets open, answering nothing. */
  stop(id) {
    const n = this.node(id)
    n.proc.kill('SIGSTOP')
    n.stopped = true
  }

  cont(id) {
    const n = this.node(id)
    if (n.proc && n.stopped) n.proc.kill('SIGCONT')
    n.stopped = false
  }

  /** Node `id`'s view of the cluster, or null if it does not answer. */
  async status(id) {
    let probe = this.probes.get(id)
    if (!probe) {
      probe = new tenure.Client({ endpoints: [this.node(id).addr], timeoutMs: 1000, bearerToken: this.bearerToken })
      this.probes.set(id, probe)
    }
    try {
      return await probe.clusterStatus()
    } catch (e) {
      if (e instanceof tenure.TenureError) return null
      throw e
    }
  }

  /** The id of the node that says it leads, once a running node says so. */
  leader(timeoutMs = 20_000) {
    return eventually(
      'a leader',
      async () => {
        for (const n of this.nodes) {
          if (!n.proc || n.stopped) continue
          const s = await this.status(n.id)
          if (s && s.role === 'leader' && s.hasQuorum) return n.id
        }
        return null
      },
      { timeoutMs, everyMs: 50 },
    )
  }

  /** Waits until a leader serves lock calls (a try-lock succeeds); resolves to its id. */
  async waitReady(timeoutMs = 30_000) {
    const client = new tenure.Client({ endpoints: this.endpoints, timeoutMs: 2000, bearerToken: this.bearerToken })
    try {
      await eventually(
        'the cluster to serve a try-lock',
        async () => {
          const lease = await client.tryAcquire('harness-probe', { ttlMs: 5000 })
          if (!lease) return false
          await lease.release()
          return true
        },
        { timeoutMs, everyMs: 50 },
      )
    } finally {
      await client.close().catch(() => {})
    }
    return this.leader(timeoutMs)
  }

  /** Starts every node that is not running, and waits for the cluster to serve. */
  async heal() {
    for (const n of this.nodes) {
      if (n.stopped) this.cont(n.id)
      if (!n.proc) this.spawn(n.id)
    }
    await this.waitReady()
  }

  /** Kills every node this cluster started and removes its files. */
  async close() {
    for (const probe of this.probes.values()) await probe.close().catch(() => {})
    for (const n of this.nodes) await this.kill(n.id)
    fs.rmSync(this.root, { recursive: true, force: true })
  }

  logs() {
    return this.nodes
      .map((n) => {
        const text = fs.existsSync(n.log) ? fs.readFileSync(n.log, 'utf8') : ''
        return `--- node ${n.id}:\n${text.slice(-4000)}`
      })
      .join('\n')
  }
}

let names = 0
/** A fresh lock name for one test. */
function lockName(what) {
  names += 1
  return `node/${what}/${process.pid}-${names}-${Math.random().toString(16).slice(2, 8)}`
}

module.exports = { Cluster, eventually, within, delay, lockName, tenuredBin, REPO }
