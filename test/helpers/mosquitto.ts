/**
 * A real mosquitto broker for tests, on a free 127.0.0.1 port, in its own temp dir.
 *
 *   const broker = await startMosquitto({ passwords: { alice: 'pw' }, allowAnonymous: false });
 *   ... connect to broker.url ...
 *   await broker.stop();          // SIGTERM (then SIGKILL), remove the temp dir
 *
 * `kill()` is an abrupt SIGKILL (to test a north broker dying); call `stop()` afterwards to
 * remove the dir. `restart()` starts a new process on the same port and dir (persistence
 * survives when enabled). Processes and dirs left over are reaped at process exit.
 *
 * The temp dir is mode 755 and, when tests run as root, owned by the `mosquitto` user:
 * mosquitto run as root drops to that user and must still read its password/ACL files and
 * write its persistence file.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForPort } from './ports.js';
import { trackChild, trackDir, untrackDir } from './reaper.js';

export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

export interface MosquittoOptions {
  /** username → password, written with mosquitto_passwd. */
  passwords?: Record<string, string>;
  /** ACL file contents (mosquitto acl_file syntax). */
  acl?: string;
  /** Lines appended to the generated config (overrides: later lines win where mosquitto allows). */
  extraConfig?: string;
  /** Default: true when no passwords are given, false otherwise. */
  allowAnonymous?: boolean;
  /** Store sessions/retained messages in the temp dir (survive restart()). Default false. */
  persistence?: boolean;
  /** Listen on this port instead of a free one (no retry if it is taken). */
  port?: number;
}

export interface MosquittoBroker {
  port: number;
  /** mqtt://127.0.0.1:PORT */
  url: string;
  /** The temp dir holding mosquitto.conf, passwd, acl and persistence files. */
  dir: string;
  /** Everything mosquitto wrote to stdout/stderr so far (its log goes there). */
  log(): string;
  /** Graceful stop (SIGTERM, SIGKILL after 3 s) and removal of the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Immediate SIGKILL; the dir stays until stop(). */
  kill(): void;
  /** Start mosquitto again on the same port and dir (after kill() or a crash). */
  restart(): Promise<void>;
}

let mosquittoIds: { uid: number; gid: number } | null | undefined;

function mosquittoUser(): { uid: number; gid: number } | null {
  if (mosquittoIds !== undefined) return mosquittoIds;
  mosquittoIds = null;
  if (typeof process.getuid === 'function' && process.getuid() === 0) {
    try {
      const uid = Number(execFileSync('id', ['-u', 'mosquitto'], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', 'mosquitto'], { encoding: 'utf8' }).trim());
      if (Number.isInteger(uid) && Number.isInteger(gid)) mosquittoIds = { uid, gid };
    } catch {
      // no mosquitto user: mosquitto then keeps running as root
    }
  }
  return mosquittoIds;
}

function giveToMosquitto(path: string, mode: number): void {
  chmodSync(path, mode);
  const ids = mosquittoUser();
  if (ids) chownSync(path, ids.uid, ids.gid);
}

function writeConfig(dir: string, port: number, opts: MosquittoOptions): string {
  const lines = [`listener ${port} 127.0.0.1`];
  const passwords = opts.passwords ?? {};
  const hasPasswords = Object.keys(passwords).length > 0;
  lines.push(`allow_anonymous ${(opts.allowAnonymous ?? !hasPasswords) ? 'true' : 'false'}`);
  if (hasPasswords) {
    const file = join(dir, 'passwd');
    let first = true;
    for (const [user, pw] of Object.entries(passwords)) {
      const args = first ? ['-b', '-c', file, user, pw] : ['-b', file, user, pw];
      execFileSync('mosquitto_passwd', args, { stdio: 'ignore' });
      first = false;
    }
    giveToMosquitto(file, 0o600);
    lines.push(`password_file ${file}`);
  }
  if (opts.acl !== undefined) {
    const file = join(dir, 'acl');
    writeFileSync(file, opts.acl.endsWith('\n') ? opts.acl : `${opts.acl}\n`);
    giveToMosquitto(file, 0o600);
    lines.push(`acl_file ${file}`);
  }
  if (opts.persistence) {
    lines.push('persistence true', `persistence_location ${dir}/`, 'autosave_interval 1');
  } else {
    lines.push('persistence false');
  }
  lines.push(
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
  );
  if (opts.extraConfig) lines.push(opts.extraConfig);
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, `${lines.join('\n')}\n`);
  chmodSync(conf, 0o644);
  return conf;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

export async function startMosquitto(opts: MosquittoOptions = {}): Promise<MosquittoBroker> {
  const dir = trackDir(mkdtempSync(join(tmpdir(), 'mqtt-proxy-mosq-')));
  giveToMosquitto(dir, 0o755);
  let output = '';
  let child: ChildProcess | null = null;
  let port = 0;
  let conf = '';

  const launch = async (): Promise<void> => {
    const c = trackChild(spawn(MOSQUITTO_BIN, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] }));
    child = c;
    const append = (b: Buffer): void => {
      if (output.length < 1_000_000) output += b.toString('utf8');
    };
    c.stdout?.on('data', append);
    c.stderr?.on('data', append);
    const exited = new Promise<never>((_, reject) => {
      c.once('exit', (code, sig) =>
        reject(new Error(`mosquitto exited early (code ${code}, signal ${sig}): ${output.slice(-2000)}`)),
      );
    });
    exited.catch(() => undefined);
    await Promise.race([waitForPort(port, 5000), exited]);
  };

  let lastError: unknown;
  for (let attempt = 0; attempt < (opts.port ? 1 : 3); attempt++) {
    port = opts.port ?? (await freePort());
    conf = writeConfig(dir, port, opts);
    try {
      await launch();
      lastError = undefined;
      break;
    } catch (err) {
      lastError = err;
      const c = child as ChildProcess | null;
      if (c && c.exitCode === null) c.kill('SIGKILL');
    }
  }
  if (lastError !== undefined) {
    rmSync(dir, { recursive: true, force: true });
    untrackDir(dir);
    throw lastError;
  }

  let stopped = false;
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    dir,
    log: () => output,
    kill(): void {
      const c = child as ChildProcess | null;
      if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    },
    async restart(): Promise<void> {
      const c = child as ChildProcess | null;
      if (c && c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await waitExit(c, 3000);
      }
      await launch();
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      const c = child as ChildProcess | null;
      if (c && c.exitCode === null && c.signalCode === null) {
        c.kill('SIGTERM');
        if (!(await waitExit(c, 3000))) {
          c.kill('SIGKILL');
          await waitExit(c, 3000);
        }
      }
      rmSync(dir, { recursive: true, force: true });
      untrackDir(dir);
    },
  };
}
