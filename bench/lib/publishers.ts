/**
 * The publishing side of the load generator. Flat-out publishing is closed-loop: at most
 * `e2eWindow` messages may be sent and not yet received by the subscriber of the same
 * process (QoS 1 adds a PUBACK window per publisher), so no broker queue grows without
 * bound and delivered throughput is the path's capacity. When nothing arrives for STALL_MS
 * while publishers wait, the outstanding messages count as lost and publishing goes on.
 * Rate mode sends a fixed number of messages per second, stamped with the send time.
 */
import { type Conn, closeAll, identityAt, openConn } from './conn.js';
import {
  type Identity,
  nextId,
  nowUs,
  type PublishTemplate,
  publishBatch,
  publishTemplate,
  stampPayload,
} from './mqtt-raw.js';
import type { Msg } from './proc.js';

const MAX_RUN_MS = 120_000;

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
/** PUBLISH packets the publishers received (e.g. a route echoing their own uplinks back). */
let downlinks = 0;
let subBase = 0;
let e2eWindow = 0;
let ackWindow = 0;
let minBatch = 1;
let lastDeliveryMs = 0;
const blocked = new Set<Pub>();
let stopTimer: NodeJS.Timeout | undefined;
let rateTimer: NodeJS.Timeout | undefined;
let stallTimer: NodeJS.Timeout | undefined;

export async function pubOpen(m: Msg): Promise<Msg> {
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
  downlinks = 0;
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

let delivered: () => number = () => 0;

/** Tells the publishers how many messages the subscriber has received so far. */
export function setDeliveredCounter(f: () => number): void {
  delivered = f;
}

function outstanding(): number {
  return sent - lost - (delivered() - subBase);
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

export function kickPublishers(): void {
  lastDeliveryMs = Date.now();
  if (blocked.size === 0) return;
  const waiting = [...blocked];
  blocked.clear();
  for (const p of waiting) fill(p);
}

export function pubStart(m: Msg): Msg {
  if (!template) throw new Error('pub-open first');
  running = true;
  flat = m.mode === 'flat';
  subBase = delivered();
  lastDeliveryMs = Date.now();
  stopTimer = setTimeout(() => pubHalt(), MAX_RUN_MS);
  ackWindow = (m.window as number | undefined) ?? 100;
  e2eWindow = (m.e2eWindow as number | undefined) ?? 2000;
  const qos1 = template.idOffset >= 0;
  minBatch = Math.max(1, Math.floor(Math.min(qos1 ? ackWindow : 32, e2eWindow / pubs.length) / 4));
  for (const p of pubs) {
    p.conn.onFrame = (type) => {
      if (type === 3) downlinks++;
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

export async function pubStop(): Promise<Msg> {
  pubHalt();
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline && pubs.some((p) => p.inflight > 0))
    await new Promise((r) => setTimeout(r, 20));
  return { sent, acked, lost, downlinks };
}

export function pubClose(): void {
  pubHalt();
  closeAll(pubs.map((p) => p.conn));
  pubs = [];
}

export function pubStat(): Msg {
  return { sent, acked, lost, downlinks };
}
