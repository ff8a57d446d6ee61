/**
 * Child process for the file store concurrency test: races other processes on one file.
 * argv: storePath workerName count. Prints one JSON line: which shared ids this worker won.
 */
import { FileStore } from '../../src/store/file.js';

const [path, name, countText] = process.argv.slice(2);
if (!path || !name || !countText) throw new Error('usage: file-worker.ts <path> <name> <count>');
const count = Number(countText);
const store = new FileStore({ path, timeoutMs: 60_000 });
const won: string[] = [];
const jobs: Promise<void>[] = [];
for (let i = 0; i < count; i++) {
  jobs.push(
    store.create('shared', `id-${i}`, { owner: name }).then((ok) => {
      if (ok) won.push(`id-${i}`);
    }),
  );
  jobs.push(store.put('own', `${name}-${i}`, { n: String(i) }));
}
await Promise.all(jobs);
await store.close();
process.stdout.write(`${JSON.stringify({ name, won })}\n`);
