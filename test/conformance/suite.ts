/**
 * Runs mosquitto's own broker test suite (Eclipse Mosquitto, test/broker/*.py, fetched from
 * Debian's source package by fetch-suite.sh) against a broker started by a controller in this
 * process: either mosquitto alone ('direct') or the proxy in pass-through in front of mosquitto
 * ('proxy'). The suite's mosq_test.py is patched in a temp copy so that it starts
 * broker-shim.py instead of /usr/sbin/mosquitto; the shim asks the controller for the broker.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from '../helpers/clients.js';
import { type MosquittoBroker, startMosquitto } from '../helpers/mosquitto.js';
import { freePort } from '../helpers/ports.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { trackDir, untrackDir } from '../helpers/reaper.js';
import { EXCLUDED_TESTS } from './known-differences.js';

const here = dirname(fileURLToPath(import.meta.url));
export const SHIM = join(here, 'broker-shim.py');

/** Where the fetched suite is cached (outside the repository). */
export const SUITE_CACHE =
  process.env.MQTT_PROXY_CONFORMANCE_SUITE ?? join(tmpdir(), 'mqtt-dialect-proxy-conformance-suite');

/** Fetch the suite when it is not cached yet; returns the mosquitto source dir. */
export function ensureSuite(): string {
  execFileSync('bash', [join(here, 'fetch-suite.sh'), SUITE_CACHE], { stdio: ['ignore', 'ignore', 'pipe'] });
  const src = readdirSync(SUITE_CACHE).find((d) => d.startsWith('mosquitto-'));
  if (!src) throw new Error(`no mosquitto source in ${SUITE_CACHE}`);
  return join(SUITE_CACHE, src);
}

/** A temp copy of test/ whose mosq_test.py starts the shim; returns { root, brokerDir, cleanup }. */
export function prepareTree(src: string): { brokerDir: string; cleanup(): void } {
  const root = trackDir(mkdtempSync(join(tmpdir(), 'mqtt-proxy-conformance-')));
  cpSync(join(src, 'test'), join(root, 'test'), { recursive: true });
  const modPath = join(root, 'test', 'mosq_test.py');
  const mod = readFileSync(modPath, 'utf8');
  // The suite gives a broker 2 s to listen; allow 10 s on a loaded machine.
  const patched = mod
    .replace('for i in range(0, 20):', 'for i in range(0, 100):')
    .replaceAll(
      "['/usr/sbin/mosquitto'",
      "[os.environ.get('MQTT_PROXY_CONFORMANCE_BROKER', '/usr/sbin/mosquitto')",
    );
  if (patched === mod) throw new Error('mosq_test.py: broker command not found, suite layout changed');
  if (!/^def expect_packet\(sock, name, expected\):/m.test(mod) || !/^def receive_unordered\(/m.test(mod)) {
    throw new Error('mosq_test.py: expect_packet/receive_unordered not found, suite layout changed');
  }
  writeFileSync(modPath, patched + readFileSync(join(here, 'mosq_test_patch.py'), 'utf8'));
  return {
    brokerDir: join(root, 'test', 'broker'),
    cleanup(): void {
      rmSync(root, { recursive: true, force: true });
      untrackDir(root);
    },
  };
}

/**
 * The tests that start one broker from a plain port (`-p PORT`) and talk to it over one TCP
 * port with no helper programs: the ones a pass-through proxy can stand in front of
 * (EXCLUDED_TESTS aside: they measure timings).
 */
export function selectTests(brokerDir: string): string[] {
  return readdirSync(brokerDir)
    .filter((f) => /^\d\d-.*\.py$/.test(f) && !(f in EXCLUDED_TESTS))
    .filter((f) => {
      const text = readFileSync(join(brokerDir, f), 'utf8');
      if (!text.includes('start_broker(')) return false;
      return !/use_conf\s*=\s*True|cmd\s*=|start_client|get_port\(\s*[2-9]|ssl\.|write_config|psutil/.test(
        text,
      );
    })
    .sort();
}

export type Mode = 'direct' | 'proxy';

interface Instance {
  broker?: MosquittoBroker;
  proxy?: TestProxy;
}

async function stopInstance(inst: Instance): Promise<string> {
  const log = inst.broker?.log() ?? '';
  if (inst.proxy) await inst.proxy.close(500).catch(() => undefined);
  if (inst.broker) await inst.broker.stop();
  return log;
}

async function startInstance(mode: Mode, argv: string[]): Promise<Instance> {
  const i = argv.indexOf('-p');
  const port = i >= 0 ? Number(argv[i + 1]) : Number.NaN;
  if (!Number.isInteger(port) || port <= 0)
    throw new Error(`unsupported broker command line: ${argv.join(' ')}`);
  if (mode === 'direct') return { broker: await startMosquitto({ port, allowAnonymous: true }) };
  const broker = await startMosquitto({ allowAnonymous: true });
  try {
    const proxy = await startTestProxy({
      north: { url: broker.url },
      listen: { tcpPort: port, wsPort: -1, tlsPort: -1, wssPort: -1 },
      metrics: { port: -1 },
    });
    return { broker, proxy };
  } catch (err) {
    await broker.stop();
    throw err;
  }
}

export interface Controller {
  path: string;
  close(): Promise<void>;
}

/** The unix-socket server the shim talks to: one line of JSON per request. */
export async function startController(mode: Mode, dir: string): Promise<Controller> {
  const path = join(dir, `ctl-${mode}.sock`);
  const live = new Set<Instance>();
  const server: Server = createServer((sock: Socket) => {
    let inst: Instance | undefined;
    let buf = '';
    const reply = (o: object): void => {
      if (!sock.destroyed) sock.write(`${JSON.stringify(o)}\n`);
    };
    const finish = async (): Promise<string> => {
      const i = inst;
      inst = undefined;
      if (!i) return '';
      live.delete(i);
      return stopInstance(i);
    };
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg: { op?: string; argv?: string[] };
        try {
          msg = JSON.parse(line) as { op?: string; argv?: string[] };
        } catch {
          reply({ ok: false, error: 'bad request' });
          continue;
        }
        if (msg.op === 'start' && !inst) {
          startInstance(mode, msg.argv ?? []).then(
            (i) => {
              inst = i;
              live.add(i);
              reply({ ok: true });
            },
            (e: unknown) => reply({ ok: false, error: String(e) }),
          );
        } else if (msg.op === 'stop') {
          finish().then(
            (log) => reply({ ok: true, log }),
            (e: unknown) => reply({ ok: false, error: String(e) }),
          );
        } else {
          reply({ ok: false, error: 'unexpected request' });
        }
      }
    });
    sock.on('close', () => void finish());
    sock.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  return {
    path,
    async close(): Promise<void> {
      await Promise.all([...live].map((i) => stopInstance(i).catch(() => '')));
      live.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface TestRun {
  name: string;
  passed: boolean;
  output: string;
}

/** Run the given tests, `parallel` at a time, each on its own free port, against the controller. */
export async function runTests(
  brokerDir: string,
  tests: string[],
  ctl: Controller,
  parallel = 2,
  // A suite test takes seconds; one that hangs on a socket timeout has failed anyway.
  perTestTimeoutMs = 40_000,
): Promise<TestRun[]> {
  const results: TestRun[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tests.length) {
      const name = tests[next++]!;
      const port = await freePort();
      const r = await runCommand('/usr/bin/python3', [name, String(port)], {
        cwd: brokerDir,
        timeoutMs: perTestTimeoutMs,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: process.env.HOME ?? '/root',
          MQTT_PROXY_CONFORMANCE_BROKER: SHIM,
          MQTT_PROXY_CONFORMANCE_CTL: ctl.path,
        },
      });
      const output = `${r.stdout}\n${r.stderr}`.slice(-4000);
      results.push({ name, passed: r.code === 0 && !r.timedOut, output });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  return results.sort((a, b) => a.name.localeCompare(b.name));
}

export function suiteAvailable(): boolean {
  return existsSync(join(SUITE_CACHE, 'VERSION'));
}
