/**
 * Reads a mappings folder (dialects/, routes/, pairs/) into texts for the pure loader.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MappingFile } from '../mapping/load.js';

export const FOLDERS = ['dialects', 'routes', 'pairs'] as const;

export async function readMappingFiles(dir: string): Promise<{ files: MappingFile[]; errors: string[] }> {
  const files: MappingFile[] = [];
  const errors: string[] = [];
  let any = false;
  for (const folder of FOLDERS) {
    const d = join(dir, folder);
    let names: string[];
    try {
      names = (await readdir(d)).filter((n) => /\.ya?ml$/.test(n)).sort();
      any = true;
    } catch {
      continue;
    }
    for (const n of names) {
      const path = join(d, n);
      try {
        files.push({ path, folder, text: await readFile(path, 'utf8') });
      } catch (e) {
        errors.push(`${path}:1:1: cannot read the file: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    }
  }
  if (!any) errors.push(`${dir}:1:1: no mappings here (expected the folders ${FOLDERS.join(', ')})`);
  return { files, errors };
}
