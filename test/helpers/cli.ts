/**
 * Command-line MQTT clients for tests: mosquitto_pub, mosquitto_sub and paho-mqtt scripts via
 * /usr/bin/python3, plus `runCommand` for any child process. Every child is killed when its
 * timeout passes (and at process exit, see reaper.ts). Re-exported by clients.ts.
 */
import { spawn } from 'node:child_process';
import { trackChild } from './reaper.js';

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Run a command to completion, killing it (SIGKILL) after timeoutMs. Never rejects on exit codes. */
export function runCommand(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CommandResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const child = trackChild(
      spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd }),
    );
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.on('data', (b: Buffer) => {
      if (stdout.length < 8_000_000) stdout += b.toString('utf8');
    });
    child.stderr?.on('data', (b: Buffer) => {
      if (stderr.length < 1_000_000) stderr += b.toString('utf8');
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    let settled = false;
    const settle = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    };
    child.once('close', settle);
    // A grandchild that outlives the command may hold its pipes open: stop waiting for them.
    child.once('exit', (code, signal) => {
      setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        settle(code, signal);
      }, 2000).unref();
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input ?? '');
  });
}

export type MqttVersionName = 'mqttv31' | 'mqttv311' | 'mqttv5';

function hostPort(url: string): string[] {
  const u = new URL(url);
  return ['-h', u.hostname, '-p', u.port || (u.protocol === 'mqtts:' ? '8883' : '1883')];
}

export interface PubOptions {
  url: string;
  topic: string;
  message: string;
  qos?: 0 | 1 | 2;
  retain?: boolean;
  version?: MqttVersionName;
  /** Extra arguments (-u, -P, -i, --cafile, -D ...). */
  extra?: string[];
  timeoutMs?: number;
}

/** mosquitto_pub one message; resolves with its exit code and output. */
export function mosquittoPub(o: PubOptions): Promise<CommandResult> {
  const args = [...hostPort(o.url), '-t', o.topic, '-m', o.message, '-q', String(o.qos ?? 0)];
  if (o.retain) args.push('-r');
  if (o.version) args.push('-V', o.version);
  args.push(...(o.extra ?? []));
  return runCommand('mosquitto_pub', args, { timeoutMs: o.timeoutMs ?? 10_000 });
}

export interface SubOptions {
  url: string;
  topics: string[];
  /** Exit after this many messages. */
  count: number;
  qos?: 0 | 1 | 2;
  version?: MqttVersionName;
  extra?: string[];
  timeoutMs?: number;
}

export interface SubHandle {
  /** Resolves when mosquitto_sub has its SUBACK. */
  ready: Promise<void>;
  /** Resolves when it exits (count reached, timeout, or killed). */
  result: Promise<CommandResult & { messages: Array<{ topic: string; payload: string }> }>;
  kill(): void;
}

const MSG_MARK = '=MSG=';

/** Start mosquitto_sub; `ready` resolves on its SUBACK, `result` holds the received messages. */
export function mosquittoSub(o: SubOptions): SubHandle {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const args = [...hostPort(o.url), '-d', '-C', String(o.count), '-q', String(o.qos ?? 0)];
  args.push('-W', String(Math.max(1, Math.ceil(timeoutMs / 1000))));
  for (const t of o.topics) args.push('-t', t);
  if (o.version) args.push('-V', o.version);
  args.push('-F', `${MSG_MARK}\t%t\t%p`);
  args.push(...(o.extra ?? []));
  // mosquitto_sub block-buffers stdout into a pipe: line-buffer it so the SUBACK line shows at once.
  const child = trackChild(
    spawn('stdbuf', ['-oL', 'mosquitto_sub', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
  );
  let stdout = '';
  let stderr = '';
  let timedOut = false;
  let markReady: () => void = () => undefined;
  let markFailed: (e: Error) => void = () => undefined;
  const ready = new Promise<void>((res, rej) => {
    markReady = res;
    markFailed = rej;
  });
  ready.catch(() => undefined);
  child.stdout?.on('data', (b: Buffer) => {
    if (stdout.length < 8_000_000) stdout += b.toString('utf8');
    if (stdout.includes('received SUBACK')) markReady();
  });
  child.stderr?.on('data', (b: Buffer) => {
    if (stderr.length < 1_000_000) stderr += b.toString('utf8');
  });
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs + 2000);
  const result = new Promise<CommandResult & { messages: Array<{ topic: string; payload: string }> }>(
    (resolve) => {
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        markFailed(new Error(`mosquitto_sub exited before SUBACK (code ${code}): ${stderr.slice(-500)}`));
        const messages = stdout
          .split('\n')
          .filter((l) => l.startsWith(`${MSG_MARK}\t`))
          .map((l) => {
            const [, topic = '', ...rest] = l.split('\t');
            return { topic, payload: rest.join('\t') };
          });
        resolve({ code, signal, stdout, stderr, timedOut, messages });
      });
    },
  );
  return { ready, result, kill: () => child.kill('SIGKILL') };
}

/**
 * Python prelude prepended to every runPaho script: `mqtt` is paho.mqtt.client and
 * `make_client(client_id='', protocol=mqtt.MQTTv311, transport='tcp', clean_session=None)`
 * builds a client on both paho 1.x and 2.x (whose Client() takes a callback API version).
 */
export const PAHO_PRELUDE = `
import sys
import paho.mqtt.client as mqtt
def make_client(client_id="", protocol=mqtt.MQTTv311, transport="tcp", clean_session=None):
    kw = dict(client_id=client_id, protocol=protocol, transport=transport)
    if protocol != mqtt.MQTTv5:
        kw["clean_session"] = True if clean_session is None else clean_session
    if hasattr(mqtt, "CallbackAPIVersion"):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, **kw)
    return mqtt.Client(**kw)
`;

/** Run a paho-mqtt script (source text; sys.argv[1:] = args) with /usr/bin/python3. */
export function runPaho(script: string, args: string[] = [], timeoutMs = 20_000): Promise<CommandResult> {
  return runCommand('/usr/bin/python3', ['-c', `${PAHO_PRELUDE}\n${script}`, ...args], { timeoutMs });
}
