/**
 * The budget for log lines repeated once per connection (src/log/repeats.ts): `limit` lines of
 * one (line, reason) per window, then one line per window saying how many were left out; other
 * reasons have budgets of their own; at debug level nothing is left out.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RepeatBudget } from '../../src/log/repeats.js';
import { captureLogs } from '../dialects/kit.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('repeated log lines within a budget', () => {
  it('writes `limit` lines of one reason per window, then says once how many it left out', async () => {
    const { logger, lines } = captureLogs('info');
    const budget = new RepeatBudget(logger, { limit: 3, windowMs: 150 });
    const taken = Array.from({ length: 8 }, () =>
      budget.allow('warn', 'north connection failed', 'unreachable'),
    );
    assert.deepEqual(taken, [true, true, true, false, false, false, false, false]);
    // Another reason, and another line, have budgets of their own.
    assert.equal(budget.allow('warn', 'north connection failed', 'timeout'), true);
    assert.equal(budget.allow('info', 'connection closed', 'unreachable'), true);
    assert.deepEqual(lines(), [], 'nothing is said before the window ends');
    await sleep(300);
    const said = lines();
    assert.equal(said.length, 1, JSON.stringify(said));
    assert.equal(said[0]?.['level'], 40, 'at the level of the lines left out');
    assert.equal(said[0]?.['line'], 'north connection failed');
    assert.equal(said[0]?.['reason'], 'unreachable');
    assert.equal(said[0]?.['suppressed'], 5);
    // A new window: the budget is whole again.
    assert.equal(budget.allow('warn', 'north connection failed', 'unreachable'), true);
    budget.close();
  });

  it('close() says what the current window left out', () => {
    const { logger, lines } = captureLogs('info');
    const budget = new RepeatBudget(logger, { limit: 1, windowMs: 60_000 });
    budget.allow('info', 'connection closed', 'north_unreachable');
    budget.allow('info', 'connection closed', 'north_unreachable');
    budget.close();
    assert.deepEqual(
      lines().map((l) => [l['line'], l['suppressed']]),
      [['connection closed', 1]],
    );
  });

  it('leaves nothing out at debug level', () => {
    const { logger, lines } = captureLogs('debug');
    const budget = new RepeatBudget(logger, { limit: 1, windowMs: 60_000 });
    const taken = Array.from({ length: 5 }, () => budget.allow('info', 'connection closed', 'x'));
    assert.deepEqual(taken, [true, true, true, true, true]);
    budget.close();
    assert.deepEqual(lines(), []);
  });
});
