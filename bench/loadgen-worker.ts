/**
 * The load generator, one process of it (bench/run.ts forks two: one publishes, one
 * subscribes; both open devices for the connect test). MQTT on raw sockets: packets are
 * built with mqtt-packet once and copied, received frames are scanned without parsing
 * into objects. Every run is bounded in time; every socket is closed on request and on exit.
 */
import net from 'node:net';
import {
  connectPacket,
  DISCONNECT,
  FrameScanner,
  type Identity,
  nextId,
  nowUs,
  type PublishTemplate,
  pubackPacket,
  publishBatch,
  publishTemplate,
  readStamp,
  stampPayload,
  subscribePacket,
} from './lib/mqtt-raw.js';
import { type Msg, serve } from './lib/proc.js';

const MAX_RUN_MS = 120_000;
const CONNECT_TIMEOUT_MS = 20_000;

function cpuNowUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function identityAt(t: Identity, i: number): Identity {
  const sub = (s: string | undefined): string | undefined => s?.replaceAll('{i}', String(i));
  const out: Identity = { clientId: sub(t.clientId) ?? '' };
  const username = sub(t.username);
  const password = sub(t.password);
  if (username !== undefined) out.username = username;
  if (password !== undefined) out.password = password;
  return out;
}

interface Conn {
  sock: net.Socket;
  scanner: FrameScanner;
  onFrame: (type: number, flags: number, buf: Buffer, start: number, end: number) => void;
  /** Called after each received chunk has been scanned (batches acks and refills). */
  afterChunk: () => void;
}

/** Opens a socket, sends CONNECT and resolves on CONNACK 0 (rejects on refusal or timeout). */
function openConn(port: number, id: Identity): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setNoDelay(true);
    let settled = false;
    const conn: Conn = {
      sock,
      scanner: new FrameScanner((type, flags, buf, start, end) => conn.onFrame(type, flags, buf, start, end)),
      afterChunk: () => {},
      onFrame: (type, _flags, buf, start) => {
        if (settled || type !== 2) return;
        settled = true;
        clearTimeout(timer);
        const code = buf[start + 1];
        conn.onFrame = () => {};
        if (code === 0) resolve(conn);
        else {
          sock.destroy();
          reject(new Error(`CONNACK return code ${code}`));
        }
      },
    };
    const timer = setTimeout(
      () => fail(new Error(`no CONNACK within ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    };
    sock.on('data', (d: Buffer) => {
      conn.scanner.push(d);
      conn.afterChunk();
    });
    sock.on('error', (e) => fail(e));
    sock.on('close', () => fail(new Error('closed before CONNACK')));
    sock.write(connectPacket(id));
  });
}

function closeAll(conns: Conn[]): void {
  for (const c of conns) {
    if (!c.sock.destroyed) c.sock.end(DISCONNECT);
    setTimeout(() => c.sock.destroy(), 500).unref();
  }
}

// ---- subscriber -------------------------------------------------------------------------

let sub: Conn | undefined;
let subCount = 0;
let latRecv: number[] = [];
let latVal: number[] = [];
let recordLatency = false;

async function subOpen(m: Msg): Promise<Msg> {
  subClose();
  const qos = m.qos as 0 | 1;
  const conn = await openConn(m.port as number, { clientId: `bench-sub-${process.pid}-${Date.now()}` });
  subCount = 0;
  latRecv = [];
  latVal = [];
  recordLatency = m.latency === true;
  let acks: Buffer[] = [];
  conn.afterChunk = () => {
    if (acks.length > 0) {
      conn.sock.write(acks.length === 1 ? (acks[0] as Buffer) : Buffer.concat(acks));
      acks = [];
    }
    kickPublishers();
  };
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no SUBACK within 5 s')), 5000);
    conn.onFrame = (type, flags, buf, start, end) => {
      if (type === 9) {
        clearTimeout(t);
        const codes = buf.subarray(start + 2, end);
        if (codes.includes(0x80)) reject(new Error('subscription refused'));
        else resolve();
        return;
      }
      if (type !== 3) return;
      subCount++;
      const q = (flags >> 1) & 3;
      const topicLen = ((buf[start] as number) << 8) | (buf[start + 1] as number);
      let p = start + 2 + topicLen;
      if (q > 0) {
        acks.push(pubackPacket(((buf[p] as number) << 8) | (buf[p + 1] as number)));
        p += 2;
      }
      if (recordLatency) {
        const sent = readStamp(buf, p, end);
        if (sent > 0) {
          const now = nowUs();
          latRecv.push(now);
          latVal.push(now - sent);
        }
      }
    };
    conn.sock.write(subscribePacket(m.filters as string[], qos));
  });
  sub = conn;
  return {};
}

function subClose(): void {
  if (sub) closeAll([sub]);
  sub = undefined;
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

function subLatency(m: Msg): Msg {
  const from = m.fromUs as number;
  const to = m.toUs as number;
  const v: number[] = [];
  for (let i = 0; i < latRecv.length; i++) {
    const r = latRecv[i] as number;
    if (r >= from && r <= to) v.push(latVal[i] as number);
  }
  v.sort((a, b) => a - b);
  return {
    n: v.length,
    p50: percentile(v, 0.5),
    p99: percentile(v, 0.99),
    max: v[v.length - 1] ?? Number.NaN,
  };
}

// ---- publishers -------------------------------------------------------------------------
//
// Flat-out publishing is closed-loop: at most `e2eWindow` messages may be sent and not yet
// received by this process's subscriber (QoS 1 adds a PUBACK window per publisher), so no
// broker queue grows without bound and delivered throughput is the path's capacity. When
// nothing arrives for STALL_MS while publishers wait, the outstanding messages count as
// lost and publishing goes on.

const STALL_MS = 200;

interface Pub {
  conn: Conn;
  nextId: number;
  inflight: number;
  waitingDrain: boolean;
  scheduled: boolean;
}

let pubs: Pub[] = [];
let template: PublishTemplate | undefined;
let running = false;
let flat = false;
let sent = 0;
let acked = 0;
let lost = 0;
let subBase = 0;
let e2eWindow = 0;
let ackWindow = 0;
let minBatch = 1;
let lastDeliveryMs = 0;
const blocked = new Set<Pub>();
let stopTimer: NodeJS.Timeout | undefined;
let rateTimer: NodeJS.Timeout | undefined;
let stallTimer: NodeJS.Timeout | undefined;

async function pubOpen(m: Msg): Promise<Msg> {
  pubClose();
  const n = m.count as number;
  const qos = m.qos as 0 | 1;
  template = publishTemplate(m.topic as string, stampPayload(m.payloadBytes as number), qos);
  const opened = await Promise.allSettled(
    Array.from({ length: n }, (_, i) => openConn(m.port as number, identityAt(m.identity as Identity, i))),
  );
  const bad = opened.find((r) => r.status === 'rejected');
  pubs = opened.flatMap((r) =>
    r.status === 'fulfilled'
      ? [{ conn: r.value, nextId: 1, inflight: 0, waitingDrain: false, scheduled: false }]
      : [],
  );
  if (bad) {
    pubClose();
    throw new Error(`publisher connect failed: ${(bad as PromiseRejectedResult).reason}`);
  }
  sent = 0;
  acked = 0;
  lost = 0;
  return { stampOffset: template.stampOffset };
}

function send(p: Pub, count: number, stampUs?: number): boolean {
  if (!template || count <= 0) return true;
  const buf = publishBatch(template, count, p.nextId, stampUs);
  if (template.idOffset >= 0) {
    p.nextId = nextId(p.nextId, count);
    p.inflight += count;
  }
  sent += count;
  return p.conn.sock.write(buf);
}

function outstanding(): number {
  return sent - lost - (subCount - subBase);
}

/** Sends what the windows allow; parks the publisher until an ack, a delivery or a drain. */
function fill(p: Pub): void {
  if (!running || !flat || p.waitingDrain) return;
  const qos1 = (template?.idOffset ?? -1) >= 0;
  for (let k = 0; k < 16; k++) {
    let room = e2eWindow - outstanding();
    if (qos1) room = Math.min(room, ackWindow - p.inflight);
    if (room < minBatch) {
      blocked.add(p);
      return;
    }
    if (!send(p, Math.min(room, 32))) {
      p.waitingDrain = true;
      p.conn.sock.once('drain', () => {
        p.waitingDrain = false;
        fill(p);
      });
      return;
    }
  }
  if (!p.scheduled) {
    p.scheduled = true;
    setImmediate(() => {
      p.scheduled = false;
      fill(p);
    });
  }
}

function kickPublishers(): void {
  lastDeliveryMs = Date.now();
  if (blocked.size === 0) return;
  const waiting = [...blocked];
  blocked.clear();
  for (const p of waiting) fill(p);
}

function pubStart(m: Msg): Msg {
  if (!template) throw new Error('pub-open first');
  running = true;
  flat = m.mode === 'flat';
  subBase = subCount;
  lastDeliveryMs = Date.now();
  stopTimer = setTimeout(() => pubHalt(), MAX_RUN_MS);
  ackWindow = (m.window as number | undefined) ?? 100;
  e2eWindow = (m.e2eWindow as number | undefined) ?? 2000;
  const qos1 = template.idOffset >= 0;
  minBatch = Math.max(1, Math.floor(Math.min(qos1 ? ackWindow : 32, e2eWindow / pubs.length) / 4));
  for (const p of pubs) {
    p.conn.onFrame = (type) => {
      if (type !== 4) return;
      acked++;
      p.inflight--;
    };
    p.conn.afterChunk = () => fill(p);
  }
  if (!flat) {
    const rate = m.rate as number;
    const t0 = nowUs();
    let i = 0;
    rateTimer = setInterval(() => {
      if (!running) return;
      const now = nowUs();
      const due = Math.floor(((now - t0) * rate) / 1e6) - sent;
      if (due <= 0) return;
      const share = new Map<Pub, number>();
      for (let k = 0; k < Math.min(due, 10_000); k++) {
        const p = pubs[i++ % pubs.length] as Pub;
        share.set(p, (share.get(p) ?? 0) + 1);
      }
      for (const [p, c] of share) send(p, c, now);
    }, 1);
    return {};
  }
  stallTimer = setInterval(() => {
    if (blocked.size > 0 && Date.now() - lastDeliveryMs > STALL_MS) {
      lost += Math.max(0, outstanding());
      kickPublishers();
    }
  }, 50);
  for (const p of pubs) fill(p);
  return {};
}

function pubHalt(): void {
  running = false;
  blocked.clear();
  for (const t of [rateTimer, stallTimer]) if (t) clearInterval(t);
  if (stopTimer) clearTimeout(stopTimer);
  rateTimer = undefined;
  stallTimer = undefined;
  stopTimer = undefined;
}

async function pubStop(): Promise<Msg> {
  pubHalt();
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && pubs.some((p) => p.inflight > 0))
    await new Promise((r) => setTimeout(r, 20));
  return { sent, acked, lost };
}

function pubClose(): void {
  pubHalt();
  closeAll(pubs.map((p) => p.conn));
  pubs = [];
}

// ---- many idle devices (memory and connect rate) --------------------------------------------

let devices: Conn[] = [];

async function devicesOpen(m: Msg): Promise<Msg> {
  const count = m.count as number;
  const from = m.from as number;
  const concurrency = m.concurrency as number;
  const identity = m.identity as Identity;
  let next = 0;
  let failed = 0;
  let firstError = '';
  const startUs = nowUs();
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = from + next++;
      try {
        const c = await openConn(m.port as number, identityAt(identity, i));
        c.sock.on('error', () => {});
        devices.push(c);
      } catch (e) {
        failed++;
        if (!firstError) firstError = e instanceof Error ? e.message : String(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return { connected: count - failed, failed, firstError, startUs, endUs: nowUs() };
}

function devicesClose(): Msg {
  const alive = devices.filter((c) => !c.sock.destroyed).length;
  closeAll(devices);
  devices = [];
  return { alive };
}

// ---- dispatch ---------------------------------------------------------------------------

serve(
  async (m) => {
    switch (m.op) {
      case 'sub-open':
        return subOpen(m);
      case 'sub-count':
        return { count: subCount, tUs: nowUs(), cpuUs: cpuNowUs() };
      case 'sub-latency':
        return subLatency(m);
      case 'sub-close':
        subClose();
        return {};
      case 'pub-open':
        return pubOpen(m);
      case 'pub-start':
        return pubStart(m);
      case 'pub-stat':
        return { sent, acked, lost, tUs: nowUs(), cpuUs: cpuNowUs() };
      case 'pub-stop':
        return pubStop();
      case 'pub-close':
        pubClose();
        return {};
      case 'devices-open':
        return devicesOpen(m);
      case 'devices-close':
        return devicesClose();
      default:
        throw new Error(`unknown op ${String(m.op)}`);
    }
  },
  async () => {
    pubClose();
    subClose();
    devicesClose();
  },
);
process.send?.({ ready: true });
