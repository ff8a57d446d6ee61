/**
 * The load generator, one process of it (bench/run.ts forks two). One process holds the
 * publishers and the subscriber (a closed loop, see lib/publishers.ts); both processes
 * open idle devices for the connect test. MQTT on raw sockets: packets are built with
 * mqtt-packet once and copied, received frames are scanned without parsing into objects.
 * Every run is bounded in time; every socket is closed on request and on exit.
 */
import type { Socket } from 'node:net';
import {
  CONNECT_TIMEOUT_MS,
  type Conn,
  closeAll,
  closeSockets,
  identityAt,
  openConn,
  openIdle,
} from './lib/conn.js';
import {
  connectPacket,
  type Identity,
  nowUs,
  PINGREQ,
  pubackPacket,
  readStamp,
  subscribePacket,
} from './lib/mqtt-raw.js';
import { type Msg, serve } from './lib/proc.js';
import {
  kickPublishers,
  pubClose,
  pubOpen,
  pubStart,
  pubStat,
  pubStop,
  setDeliveredCounter,
} from './lib/publishers.js';

function cpuNowUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
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
  // At a fixed rate the subscriber answers every chunk, at QoS 0 with a PINGREQ: its TCP
  // acknowledgement then goes out at once instead of after the kernel's delayed-ACK timer,
  // which mosquitto's Nagle algorithm (set_tcp_nodelay false) would otherwise wait for
  // before writing the next small message to it (BENCHMARKS.md, finding 6).
  const answerEveryChunk = m.latency === true && m.qos === 0;
  conn.afterChunk = () => {
    if (acks.length > 0) {
      conn.sock.write(acks.length === 1 ? (acks[0] as Buffer) : Buffer.concat(acks));
      acks = [];
    } else if (answerEveryChunk) conn.sock.write(PINGREQ);
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

setDeliveredCounter(() => subCount);

// ---- many idle devices (memory and connect rate) --------------------------------------------

let devices: Socket[] = [];

async function devicesOpen(m: Msg): Promise<Msg> {
  const count = m.count as number;
  const from = m.from as number;
  const concurrency = m.concurrency as number;
  const identity = m.identity as Identity;
  // The CONNECT packets are made before the clock starts: the window holds only the connects.
  const connects = Array.from({ length: count }, (_, k) => connectPacket(identityAt(identity, from + k)));
  let next = 0;
  let failed = 0;
  let firstError = '';
  const startUs = nowUs();
  const cpu0 = cpuNowUs();
  const lane = async (): Promise<void> => {
    let current: Socket | undefined;
    const track = (s: Socket): void => {
      current = s;
    };
    // One deadline per lane, moved on at each connect.
    const timer = setTimeout(
      () => current?.destroy(new Error(`no CONNACK within ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
    try {
      while (next < count) {
        const k = next++;
        timer.refresh();
        try {
          devices.push(await openIdle(m.port as number, connects[k] as Buffer, track));
        } catch (e) {
          failed++;
          if (!firstError) firstError = e instanceof Error ? e.message : String(e);
        }
      }
    } finally {
      clearTimeout(timer);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  const cpuUs = cpuNowUs() - cpu0;
  return { connected: count - failed, failed, firstError, startUs, endUs: nowUs(), cpuUs };
}

function devicesClose(): Msg {
  const alive = devices.filter((s) => !s.destroyed).length;
  closeSockets(devices);
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
        return { ...pubStat(), tUs: nowUs(), cpuUs: cpuNowUs() };
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
