/** Conformance shard 1: see shard.ts. */
import { conformanceShard } from './shard.js';

conformanceShard(1);
