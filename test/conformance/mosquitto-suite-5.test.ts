/** Conformance shard 5: see shard.ts. */
import { conformanceShard } from './shard.js';

conformanceShard(5);
