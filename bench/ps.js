// The network parameter server on loopback, beside references measured in the same run:
//   1. push-pull round trips of 1M and 10M floats (a worker's pushpull: the gradient up, the
//      parameters down), in GB/s of payload, beside raw TCP moving the same bytes the same way
//      with Node's `net` (a client writes 4·n bytes, an echo server writes them back); the server
//      runs in another process in both cases, and the two are timed in alternating blocks (medians);
//   2. training throughput of 1 server + 2 worker processes (`loom train --cluster local:1,2`)
//      beside 2 local threads (`loom train --workers 2`), on the reference model (news) and the
//      Fashion-MNIST MLP (when dataset-fashion-mnist is installed).
//   Beside both, the floor of the WebSocket library itself: the same bytes moved the same way by
//   plain `ws` (1 MiB binary messages, the protocol's part size; a zero mask, as Loom's client
//   sends), with no header, no copy and no work. Push-pull cannot be faster than this.
// Usage: node bench/ps.js [--quick] [--roundtrip] (only table 1)
// Large payloads travel in parts of PART_FLOATS floats (protocol v2): glibc maps every allocation
// over 32 MiB afresh and ws allocates each received message, so one 40 MB message paid ~24 ms of
// page faults per hop; parts are recycled by malloc and joined into memory the receiver reuses.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { ParameterServer, PsClient } from '@loom/parameter-server';
import WebSocket, { WebSocketServer } from 'ws';
import { median, printTable } from './lib.js';

const quick = process.argv.includes('--quick');
const roundtripOnly = process.argv.includes('--roundtrip');
const SELF = fileURLToPath(import.meta.url);
const CLI = fileURLToPath(new URL('../apps/cli/dist/main.js', import.meta.url));
const FMNIST = '/usr/share/datasets/fashion-mnist';
const TOKEN = 'bench-token';

// ---- child processes: the servers ------------------------------------------------------------
if (process.argv[2] === '--child-ps') {
  const sizes = JSON.parse(process.argv[3]);
  // async + sgd: each push is applied at once, the cheapest update there is.
  const s = await ParameterServer.start({ sizes, seed: 1, optimizer: 'sgd', lr: 1e-6, mode: 'async', workers: 1, token: TOKEN, port: 0 });
  console.log(s.url);
  await s.closed;
  process.exit(0);
}
if (process.argv[2] === '--child-tcp') {
  // The exchange a parameter server makes, without the server: read the whole message of n bytes,
  // then send n bytes back (a streaming echo would overlap the two directions, which a server that
  // must see the whole gradient before it answers cannot).
  const n = Number(process.argv[3]);
  const server = createServer({ noDelay: true }, (sock) => {
    sock.on('data', echoWhole(n, (pieces) => {
      sock.cork();
      for (const c of pieces) sock.write(c);
      sock.uncork();
    }));
  });
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
  await serveUntilStdinEnds();
}
if (process.argv[2] === '--child-ws') {
  // The same exchange over plain ws, message by message as ws hands them over.
  const n = Number(process.argv[3]);
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 1 << 30 });
  wss.on('listening', () => console.log(wss.address().port));
  wss.on('connection', (ws) => {
    ws.on('message', echoWhole(n, (pieces) => {
      for (const b of pieces) ws.send(b);
    }));
  });
  await serveUntilStdinEnds();
}

/** A 'data' handler that keeps what arrives and, once n bytes are in, hands back every piece, as is. */
function echoWhole(n, sendAll) {
  let pieces = [];
  let got = 0;
  return (piece) => {
    pieces.push(piece);
    got += piece.length;
    if (got < n) return;
    sendAll(pieces);
    pieces = [];
    got = 0;
  };
}

/** An echo child serves until the parent closes its stdin. */
function serveUntilStdinEnds() {
  process.stdin.on('end', () => process.exit(0)).resume();
  return new Promise(() => {});
}

/** Bytes per message of the plain-ws floor: the protocol's part size (PART_FLOATS floats). */
const WS_MESSAGE = 1 << 20;

function child(args) {
  const proc = spawn(process.execPath, [SELF, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const first = new Promise((r) => createInterface({ input: proc.stdout }).once('line', r));
  return { proc, first };
}

/**
 * A push-pull client against a server process, and a raw TCP client against an echo process, both
 * open at once; `psOnce` and `tcpOnce` each make one round trip of n floats. The two are timed in
 * alternating blocks, so that both see the same state of the machine: on this 2-vCPU guest the raw
 * TCP figure alone moved between 27 and 52 ms for 10M floats from one minute to the next.
 */
async function roundTrips(sizes, n) {
  const ps = child(['--child-ps', JSON.stringify(sizes)]);
  const tcp = child(['--child-tcp', String(4 * n)]);
  const plain = child(['--child-ws', String(4 * n)]);
  const client = await PsClient.connect([await ps.first], { token: TOKEN, rank: 0, workers: 1, size: n });
  const grads = new Float32Array(n).fill(1e-3);
  const params = new Float32Array(n);
  await client.pull(0, params);
  let step = 0;
  const sock = createConnection({ port: Number(await tcp.first), host: '127.0.0.1', noDelay: true });
  await new Promise((r) => sock.once('connect', r));
  const bytes = Buffer.from(new Float32Array(n).fill(1e-3).buffer);
  let want = 0;
  let done = () => {};
  sock.on('data', (d) => {
    want -= d.length;
    if (want === 0) done();
  });
  const ws = new WebSocket(`ws://127.0.0.1:${await plain.first}`, { perMessageDeflate: false, maxPayload: 1 << 30, generateMask: (m) => void m.fill(0) });
  await new Promise((r, j) => ws.once('open', r).once('error', j));
  let wsWant = 0;
  let wsDone = () => {};
  ws.on('message', (m) => {
    wsWant -= m.length;
    if (wsWant === 0) wsDone();
  });
  return {
    psOnce: () => client.pushPull(step++, grads, params, { rows: 1, batchRows: 1 }),
    wsOnce: () => new Promise((r) => {
      wsWant = bytes.length;
      wsDone = r;
      for (let a = 0; a < bytes.length; a += WS_MESSAGE) ws.send(bytes.subarray(a, Math.min(bytes.length, a + WS_MESSAGE)));
    }),
    tcpOnce: () => new Promise((r) => {
      want = bytes.length;
      done = r;
      sock.write(bytes);
    }),
    async close() {
      await client.shutdown(true);
      await client.close();
      sock.destroy();
      ws.terminate();
      tcp.proc.stdin.end();
      plain.proc.stdin.end();
      await Promise.all([ps, tcp, plain].map(({ proc }) => new Promise((r) => proc.once('exit', r))));
    },
  };
}

/**
 * Median seconds per round trip of each kind, in steady state: first each runs for a second (at
 * least 10 round trips; the protocol code takes ~10 round trips to be compiled), then three
 * alternating rounds of one block per kind, a third of `reps` each, every block opened by one
 * untimed round trip. Within a block each kind runs back to back, as a training worker's round
 * trips do; alternating the blocks spreads all kinds over the same minutes.
 */
async function timeAlternately(kinds, reps) {
  for (const fn of kinds) {
    const until = performance.now() + 1000;
    for (let i = 0; i < 10 || performance.now() < until; i++) await fn();
  }
  const BLOCK = Math.max(5, Math.ceil(reps / 3));
  const times = kinds.map(() => []);
  for (let round = 0; round < 3; round++) {
    for (const [k, fn] of kinds.entries()) {
      await fn();
      for (let i = 0; i < BLOCK; i++) {
        const t0 = performance.now();
        await fn();
        times[k].push((performance.now() - t0) / 1000);
      }
    }
  }
  return times.map(median);
}

const rows = [];
// mlp:1000,1000 has 1,001,000 parameters; mlp:3162,3162 has 10,001,406.
for (const [label, sizes, n, reps] of [['1M', [1000, 1000], 1_001_000, quick ? 10 : 40], ['10M', [3162, 3162], 10_001_406, quick ? 6 : 20]]) {
  const rt = await roundTrips(sizes, n);
  const [ps, tcp, ws] = await timeAlternately([rt.psOnce, rt.tcpOnce, rt.wsOnce], reps);
  await rt.close();
  const gb = (s) => (8 * n) / s / 1e9; // 4n bytes up, 4n down
  const pct = (s) => ((100 * tcp) / s).toFixed(0) + '%';
  rows.push({ floats: label, 'pushpull ms': ps * 1e3, 'pushpull GB/s': gb(ps), 'raw TCP ms': tcp * 1e3, 'raw TCP GB/s': gb(tcp), 'ps/tcp': pct(ps), 'plain ws ms': ws * 1e3, 'plain ws/tcp': pct(ws) });
}
printTable('push-pull round trip on loopback (payload both ways; servers in other processes; async sgd applies each push; push-pull, raw TCP and plain ws timed in three alternating blocks each; plain ws: the same bytes over ws with no header, copy or work — the floor of any protocol on ws)', rows);

// ---- training throughput -------------------------------------------------------------------
if (roundtripOnly) process.exit(0);
const tmp = mkdtempSync(join(tmpdir(), 'loom-bench-ps-'));
function loomRate(args, epochs) {
  const out = join(tmp, `run-${Math.random().toString(36).slice(2)}`);
  const r = spawnSync(process.execPath, [CLI, 'train', ...args, '--epochs', String(epochs), '--out', out], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`loom train ${args.join(' ')} failed: ${r.stderr}`);
  const rates = r.stdout.split('\n').filter((l) => l.startsWith('epoch ')).map((l) => Number(/(\d+) samples\/s/.exec(l)[1]));
  return Math.max(...(rates.length > 1 ? rates.slice(1) : rates)); // epoch 1 includes start-up and JIT warm-up
}
const workloads = [{ name: 'news, reference 100→50→10', args: ['--dataset', 'news', '--model', 'reference', '--batch-size', '64'], epochs: quick ? 2 : 3 }];
if (existsSync(FMNIST)) workloads.push({ name: 'fmnist 784→256→128→10', args: ['--dataset', `idx:${FMNIST}`, '--model', 'mlp:784,256,128,10', '--batch-size', '128'], epochs: 2 });
else console.error(`[skipped] Fashion-MNIST is not installed at ${FMNIST}: apt-get install -y dataset-fashion-mnist`);
const train = [];
for (const w of workloads) {
  const threads = loomRate([...w.args, '--workers', '2'], w.epochs);
  const cluster = loomRate([...w.args, '--cluster', 'local:1,2'], w.epochs);
  train.push({ workload: w.name, '2 threads samples/s': threads, '1 server + 2 workers samples/s': cluster, 'cluster/threads': (cluster / threads).toFixed(2) + '×' });
}
printTable('training throughput, sync (best epoch after the first)', train);
