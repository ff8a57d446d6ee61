/** Conformance shard 8: see shard.ts. */
import { conformanceShard } from './shard.js';

conformanceShard(8);
