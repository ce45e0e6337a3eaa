// The hedging cap: hedges stay within a share of the worker's recent provider calls, so an
// outage that makes every request slow cannot double the load on the other providers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noteProviderCall, takeHedge } from '../activities/provider-call/hedge-budget.js';

test('hedges are capped at maxShare of the last minute of calls (plus one), and the window slides', () => {
  const t0 = 1_000_000;
  for (let i = 0; i < 100; i++) noteProviderCall(t0 + i);
  let granted = 0;
  for (let i = 0; i < 100; i++) if (takeHedge(0.05, t0 + 200 + i)) granted++;
  assert.equal(granted, 6, '5 % of 100 calls, plus the one a quiet worker may always take');
  assert.equal(takeHedge(0.05, t0 + 300), false);
  // A minute later the old calls and hedges have left the window.
  for (let i = 0; i < 20; i++) noteProviderCall(t0 + 61_000 + i);
  assert.equal(takeHedge(0.05, t0 + 61_100), true);
  assert.equal(takeHedge(0.05, t0 + 61_101), true);
  assert.equal(takeHedge(0.05, t0 + 61_102), false);
});
