/** Conformance shard 6: see shard.ts. */
import { conformanceShard } from './shard.js';

conformanceShard(6);
