/** Conformance shard 9: see shard.ts. */
import { conformanceShard } from './shard.js';

conformanceShard(9);
