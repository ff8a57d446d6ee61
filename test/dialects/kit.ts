/**
 * Shared by the akenza, foxtrackr and ClearBlade dialect tests: keys, temporary credentials
 * files, a proxy running a shipped route from `mappings/`, and log capture.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import type { DeepPartial, ProxyConfig } from '../../src/config/schema.js';
import { createLogger, type Logger } from '../../src/log/logger.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

export const MAPPINGS = resolve(import.meta.dirname, '../../mappings');

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** PKCS#8 PEM of the private key (what a credentials file holds). */
  pem: string;
}

export function rsaKey(): KeyPair {
  const k = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...k, pem: k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

export function ecKey(): KeyPair {
  const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { ...k, pem: k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

export interface CredentialRow {
  south: Record<string, string>;
  north: Record<string, string>;
}

/** A temporary folder; `cleanup()` removes it. */
export function tempDir(prefix = 'mdp-dialects-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes a YAML credentials file (JSON is YAML; PEM keys keep their line breaks). */
export function writeCredentials(dir: string, rows: CredentialRow[], name = 'credentials.yaml'): string {
  const path = join(dir, name);
  writeFileSync(path, `${rows.map((r) => `- ${JSON.stringify(r)}`).join('\n')}\n`, { mode: 0o600 });
  return path;
}

/** Every log line the proxy writes, at `level` (debug unless given), kept in memory. */
export function captureLogs(level = 'debug'): {
  logger: Logger;
  text(): string;
  lines(): Array<Record<string, unknown>>;
} {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const logger = createLogger({ level, format: 'json', destination: sink });
  const text = (): string => chunks.join('');
  const lines = (): Array<Record<string, unknown>> =>
    text()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { logger, text, lines };
}

/** The proxy running a shipped route against `northUrl`, with the given credentials file. */
export function startRouteProxy(
  route: string,
  northUrl: string,
  credentials: string,
  opts: { logger?: Logger; overrides?: DeepPartial<ProxyConfig> } = {},
): Promise<TestProxy> {
  return startTestProxy(
    {
      ...opts.overrides,
      north: { url: northUrl, ...opts.overrides?.north },
      mapping: { dir: MAPPINGS, route, credentials },
    },
    opts.logger ? { logger: opts.logger } : {},
  );
}

export async function scrape(proxy: TestProxy): Promise<string> {
  const res = await fetch(`${proxy.metricsUrl}/metrics`);
  return res.text();
}

/** The value of one metric sample (labels given in exposition order), 0 when absent. */
export function metricValue(text: string, name: string, labels = ''): number {
  const head = labels ? `${name}{${labels}}` : name;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${head} `)) return Number(line.slice(head.length + 1));
  }
  return 0;
}

/** Waits until `predicate` holds, polling every 20 ms; rejects after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
