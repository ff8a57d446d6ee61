/**
 * External processes of the benchmark: mosquitto (the north broker, and a second one
 * acting as a bridge with topic remapping) and haproxy in tcp mode when it is installed.
 * Each gets a temp dir (mode 755: mosquitto started as root drops to its own user).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from './proc.js';

export interface External {
  name: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

function startProcess(
  name: string,
  cmd: string,
  args: string[],
  dir: string,
  port: number,
): Promise<External> {
  const proc: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  let exited = false;
  const gone = new Promise<void>((r) =>
    proc.once('exit', () => {
      exited = true;
      r();
    }),
  );
  const stop = async (): Promise<void> => {
    if (!exited) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return waitForPort(port).then(
    () => ({ name, port, pid: proc.pid ?? -1, stop }),
    async (e: Error) => {
      await stop();
      throw new Error(`${name} did not start: ${e.message}; ${stderr.trim()}`);
    },
  );
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

const COMMON = [
  'allow_anonymous true',
  'max_connections -1',
  'max_inflight_messages 100',
  'max_queued_messages 100000',
  'persistence false',
  'log_dest stderr',
  'log_type error',
];

export async function startMosquitto(name = 'mosquitto'): Promise<External> {
  const dir = tempDir('bench-mosq-');
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, [`listener ${port} 127.0.0.1`, ...COMMON, ''].join('\n'));
  chmodSync(conf, 0o644);
  return startProcess(name, 'mosquitto', ['-c', conf], dir, port);
}

/** A mosquitto whose bridge forwards `$resource/#` to `/thngs/T1/properties/#` on the north broker. */
export async function startMosquittoBridge(northPort: number): Promise<External> {
  const dir = tempDir('bench-bridge-');
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  const lines = [
    `listener ${port} 127.0.0.1`,
    ...COMMON,
    'connection bench-bridge',
    `address 127.0.0.1:${northPort}`,
    'topic # out 1 $resource/ /thngs/T1/properties/',
    'bridge_protocol_version mqttv311',
    'cleansession true',
    'try_private false',
    'notifications false',
    'start_type automatic',
    '',
  ];
  writeFileSync(conf, lines.join('\n'));
  chmodSync(conf, 0o644);
  return startProcess('mosquitto-bridge', 'mosquitto', ['-c', conf], dir, port);
}

export function haproxyInstalled(): boolean {
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** haproxy in tcp mode, one thread (the Node hops are single-threaded too). */
export async function startHaproxy(northPort: number): Promise<External> {
  const dir = tempDir('bench-haproxy-');
  const port = await freePort();
  const conf = join(dir, 'haproxy.cfg');
  const lines = [
    'global',
    '  nbthread 1',
    '  maxconn 9000',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 1h',
    '  timeout server 1h',
    'frontend south',
    `  bind 127.0.0.1:${port}`,
    '  default_backend north',
    'backend north',
    `  server broker 127.0.0.1:${northPort}`,
    '',
  ];
  writeFileSync(conf, lines.join('\n'));
  return startProcess('haproxy', 'haproxy', ['-db', '-f', conf], dir, port);
}
