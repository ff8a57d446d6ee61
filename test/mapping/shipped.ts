/** The shipped mapping files, read for the pure loader (tests only). */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MappingFile } from '../../src/mapping/load.js';

export const MAPPINGS_DIR = join(import.meta.dirname, '..', '..', 'mappings');

export function shippedMappings(dir = MAPPINGS_DIR): MappingFile[] {
  const out: MappingFile[] = [];
  for (const folder of ['dialects', 'routes', 'pairs']) {
    for (const n of readdirSync(join(dir, folder)).sort()) {
      if (n.endsWith('.yaml'))
        out.push({ path: join(folder, n), folder, text: readFileSync(join(dir, folder, n), 'utf8') });
    }
  }
  return out;
}
