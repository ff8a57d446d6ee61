/**
 * What the translating paths need: a route from mappings/ and a credentials file with one
 * identity per simulated device (Connector token → Thng and API key, or → ClearBlade device
 * behind the proxy's gateway), written to a temp dir that `cleanup` removes.
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Identity } from './mqtt-raw.js';

export interface TranslateSetup {
  route: string;
  credentials: string;
  identity: Identity;
  /** The north client id the route gives device i (its Thng id), when it has one of its own. */
  northSession?: Identity;
  topic: string;
  cleanup(): void;
}

export const ROUTE = 'connector-to-evrythng';

/** The token of simulated device i (`{i}` in the load generator's identity template). */
const token = (i: number | string): string => `bench-token-${i}-${'f'.repeat(24)}`;

/** The same translation without downlinks (`downlinks: false`): one way, like the bridge's `out`. */
export const UPLINK_ROUTE = 'connector-to-evrythng-uplink';

/**
 * Connector devices behind one ClearBlade gateway that the proxy plays: one north connection
 * for all of them, each device attached on it (QoS 1) when it connects.
 */
export const GATEWAY_ROUTE = 'connector-to-clearblade';

/** The benchmark's proxy paths, by key (the JSON's and `--paths=`'s), and the route each runs. */
export const PROXY_ROUTES = {
  'proxy-passthrough': 'passthrough',
  'proxy-connector-evrythng': ROUTE,
  'proxy-connector-evrythng-uplink': UPLINK_ROUTE,
  'proxy-connector-clearblade': GATEWAY_ROUTE,
} as const;
export type ProxyPath = keyof typeof PROXY_ROUTES;

/** Returns the setup for `devices` devices (numbered from 0), or why the path cannot run. */
export function prepareTranslate(devices: number, route = ROUTE): TranslateSetup | string {
  const routeFile = join('mappings', 'routes', `${route}.yaml`);
  if (!existsSync(routeFile)) return `${routeFile} does not exist yet`;
  const gateway = route === GATEWAY_ROUTE;
  // The gateway's key (EC P-256: the proxy signs its JWT with it), in every record.
  const key = gateway
    ? String(
        generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
          type: 'pkcs8',
          format: 'pem',
        }),
      )
    : '';
  const dir = mkdtempSync(join(tmpdir(), 'bench-creds-'));
  // JSON, as the docs advise for a fleet of thousands (the YAML reader's start-up memory
  // would otherwise sit under the devices' own: BENCHMARKS.md findings 10 and 11).
  const n = Math.max(devices, 100);
  const records = Array.from({ length: n }, (_, i) => ({
    south: { deviceId: `d${i}`, token: token(i) },
    north: gateway ? { privateKey: key } : { thngId: `T${i}`, apiKey: `bench-api-key-${i}` },
  }));
  const credentials = join(dir, 'credentials.json');
  writeFileSync(credentials, `${JSON.stringify(records, null, 1)}\n`);
  return {
    route,
    credentials,
    // Token scheme: client id and username the device id, password the token.
    identity: { clientId: 'd{i}', username: 'd{i}', password: token('{i}') },
    // The gateway's devices have no north session of their own.
    ...(gateway ? {} : { northSession: { clientId: 'T{i}' } }),
    topic: '$resource/temperature',
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
