/**
 * The rig of the account-wide foxtrackr tests: EVRYTHNG as mosquitto (one API key, ACLs on
 * Thngs UXYZ777 and UXYZ778), the proxy on route foxtrackr-to-evrythng with one login listing
 * devices 777 and 778 (and `groups` when given), and a platform-side client subscribed to
 * `/thngs/#` that publishes the updates.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { type MosquittoPlatform, startEvrythngBroker } from '../emulators/mosquitto-platforms.js';
import { closeAll, connectClient, type MqttClient, subscribe } from '../helpers/clients.js';
import type { TestProxy } from '../helpers/proxy.js';
import { startRouteProxy, tempDir } from './kit.js';

export interface FleetRig {
  evt: MosquittoPlatform;
  proxy: TestProxy;
  /** The platform's own client on EVRYTHNG, subscribed to `/thngs/#`. */
  platform: MqttClient;
  /** An application with the login (clean session 0, no reconnects), closed with the rig. */
  app(clientId: string): Promise<MqttClient>;
  /** Clients to close with the rig. */
  clients: MqttClient[];
  close(): Promise<void>;
}

export async function startFleetRig(o: {
  apiKey: string;
  login: { username: string; password: string };
  groups?: string;
  logger?: Logger;
}): Promise<FleetRig> {
  const tmp = tempDir();
  const evt = await startEvrythngBroker({ apiKey: o.apiKey, thngs: ['UXYZ777', 'UXYZ778'] });
  const creds = join(tmp.dir, 'fleet.yaml');
  writeFileSync(
    creds,
    [
      `- south: ${JSON.stringify(o.login)}`,
      `  north: { apiKey: "${o.apiKey}" }`,
      '  devices:',
      '    - { deviceId: "777", thngId: "UXYZ777" }',
      '    - { deviceId: "778", thngId: "UXYZ778" }',
      ...(o.groups ? [`  groups: ${o.groups}`] : []),
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const proxy = await startRouteProxy(
    'foxtrackr-to-evrythng',
    evt.url,
    creds,
    o.logger ? { logger: o.logger } : {},
  );
  const platform = await connectClient(evt.url, { ...evt.platform, clientId: 'evt-platform' });
  const clients: MqttClient[] = [platform];
  await subscribe(platform, '/thngs/#', { qos: 1 });
  return {
    evt,
    proxy,
    platform,
    clients,
    async app(clientId) {
      const c = await connectClient(proxy.url, { ...o.login, clientId, clean: false, reconnectPeriod: 0 });
      clients.push(c);
      return c;
    },
    async close() {
      await closeAll(clients);
      await proxy.close(500);
      await evt.stop();
      tmp.cleanup();
    },
  };
}
