/**
 * Shared set-up of the Connector / EVRYTHNG dialect tests: a mappings folder holding the
 * shipped dialects plus one route written by the test, a file store in a temp dir, and the
 * EVRYTHNG north emulated by mosquitto (password file + ACL, one API key).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Packet } from 'mqtt-packet';
import type { DeepPartial, ProxyConfig } from '../../src/config/schema.js';
import { FileStore } from '../../src/store/file.js';
import type { CredentialStore } from '../../src/store/types.js';
import { startEvrythngBroker } from '../emulators/mosquitto-platforms.js';
import { connectClient, type MqttClient } from '../helpers/clients.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

const SHIPPED = join(import.meta.dirname, '..', '..', 'mappings');

export interface MappingsDir {
  dir: string;
  cleanup(): void;
}

/** The shipped dialects and pairs, plus `files` (paths relative to the folder, e.g. routes/x.yaml). */
export function mappingsDir(files: Record<string, string>): MappingsDir {
  const dir = mkdtempSync(join(tmpdir(), 'mdp-dialects-'));
  cpSync(join(SHIPPED, 'dialects'), join(dir, 'dialects'), { recursive: true });
  cpSync(join(SHIPPED, 'pairs'), join(dir, 'pairs'), { recursive: true });
  cpSync(join(SHIPPED, 'routes'), join(dir, 'routes'), { recursive: true });
  cpSync(join(SHIPPED, 'credentials'), join(dir, 'credentials'), { recursive: true });
  for (const [rel, text] of Object.entries(files)) writeFileSync(join(dir, rel), text);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The shipped route `evrythng-to-connector` toward the Connector at `url`, with `records`
 * (lines of a credentials YAML file) as its credentials.
 */
export function evrythngToConnector(url: string, records: string[]): MappingsDir {
  const shipped = readFileSync(join(SHIPPED, 'routes', 'evrythng-to-connector.yaml'), 'utf8');
  return mappingsDir({
    'routes/evrythng-to-connector.yaml': shipped
      .replace(/^# url: .*$/m, `url: ${url}`)
      .replace('credentials/evrythng-connector.yaml', 'credentials/test-evrythng-connector.yaml'),
    'credentials/test-evrythng-connector.yaml': [...records, ''].join('\n'),
  });
}

export interface TempStore {
  path: string;
  store: CredentialStore;
  cleanup(): Promise<void>;
}

export function tempStore(): TempStore {
  const dir = mkdtempSync(join(tmpdir(), 'mdp-store-'));
  const path = join(dir, 'store.json');
  const store = new FileStore({ path });
  return {
    path,
    store,
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const API_KEY = 'evt-operator-key-0123456789abcdef';

/** EVRYTHNG emulated by mosquitto: `authorization` + API_KEY (operator scope) and a platform account. */
export function startEvrythngNorth() {
  return startEvrythngBroker({ apiKey: API_KEY, operator: true });
}

export type Broker = Awaited<ReturnType<typeof startEvrythngNorth>>;

/** A client of the emulated platform itself (it sees every topic, and sends downlinks). */
export function platformClient(north: Broker): Promise<MqttClient> {
  return connectClient(north.url, {
    username: north.platform.username,
    password: north.platform.password,
    clientId: `platform-${Math.random().toString(16).slice(2)}`,
  });
}

/** The proxy on a mappings folder and route, north = the given broker. */
export function proxyFor(
  north: { url: string },
  mappings: MappingsDir,
  route: string,
  store?: CredentialStore,
  extra: DeepPartial<ProxyConfig> = {},
): Promise<TestProxy> {
  return startTestProxy(
    { ...extra, north: { url: north.url }, mapping: { dir: mappings.dir, route } },
    store ? { store } : {},
  );
}

/** The route of the provisioning tests: Connector devices activate themselves; north is EVRYTHNG. */
export function provisionRoute(name: string, mode: 'token' | 'password', content?: string): string {
  return [
    `route: ${name}`,
    'south: connector',
    'north: evrythng',
    'connection: direct',
    'offline_sync: true',
    'identity:',
    '  store: connector',
    `  provision: ${mode}`,
    `  north: { thngId: "{deviceId}", apiKey: "\${TEST_EVRYTHNG_KEY}" }`,
    ...(content ? [`content: ${content}`] : []),
    '',
  ].join('\n');
}

/** SUBSCRIBE and the SUBACK's return codes as sent (MQTT.js rejects a SUBACK holding 0x80). */
export function subackCodes(client: MqttClient, filters: string[], qos: 0 | 1 | 2 = 1): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.removeListener('packetreceive', onPacket);
      reject(new Error('no SUBACK within 5000 ms'));
    }, 5000);
    const onPacket = (p: Packet): void => {
      if (p.cmd !== 'suback') return;
      clearTimeout(timer);
      client.removeListener('packetreceive', onPacket);
      resolve([...(p.granted as number[])]);
    };
    client.on('packetreceive', onPacket);
    client.subscribe(filters, { qos }, () => undefined);
  });
}

export const TOKENS = {
  a: 'a1b2c3d4e5f60718293a4b5c6d7e8f9001122334',
  b: 'b1b2c3d4e5f60718293a4b5c6d7e8f9001122334',
};
export const PASSWORD_P = 'correct-horse-battery-staple-42';

/** A Connector → EVRYTHNG route on a credentials file: token, password and certificate devices. */
export function quirksMappings(): MappingsDir {
  return mappingsDir({
    'routes/test-connector.yaml': [
      'route: test-connector',
      'south: connector',
      'north: evrythng',
      'connection: direct',
      'offline_sync: true',
      'identity:',
      '  file: credentials/test-connector.yaml',
      '  key: [token, deviceId]',
      '',
    ].join('\n'),
    'credentials/test-connector.yaml': [
      `- south: { deviceId: dev-a, token: "${TOKENS.a}" }`,
      `  north: { thngId: THNGA, apiKey: "${API_KEY}" }`,
      `- south: { deviceId: dev-b, token: "${TOKENS.b}" }`,
      `  north: { thngId: THNGB, apiKey: "${API_KEY}" }`,
      `- south: { deviceId: dev-p, password: "${PASSWORD_P}" }`,
      `  north: { thngId: THNGP, apiKey: "${API_KEY}" }`,
      '- south: { deviceId: cert-dev }',
      `  north: { thngId: THNGC, apiKey: "${API_KEY}" }`,
      '',
    ].join('\n'),
  });
}
