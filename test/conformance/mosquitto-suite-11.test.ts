/** Conformance shard 11: see shard.ts (the suite's slowest tests). */
import { conformanceShard } from './shard.js';

conformanceShard(11);
