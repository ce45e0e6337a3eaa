// The pure logic of virtual keys (src/core/keys.ts, src/core/key-cost.ts): reservations against a
// budget, settlement, the RPM/TPM window, periods, allowed models and the worst-case estimate. The
// entity workflow runs exactly these functions; test/keys.e2e.test.ts runs them through Temporal.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { parseConfig } from '../src/config/load.js';
import { PROMPT_OVERHEAD_TOKENS, MEDIA_PART_TOKENS, keyedRequestProblem, promptTokenBound, utf8Length, worstCase } from '../src/core/key-cost.js';
import {
  RATE_WINDOW_MS,
  applySettings,
  budgetReport,
  keyRefusal,
  keyView,
  modelAllowed,
  newKeyState,
  periodEnd,
  periodStartFor,
  previewReserve,
  release,
  reserve,
  settle,
  usdToNanos,
  type KeySettings,
  type ReserveItem,
} from '../src/core/keys.js';

const T0 = Date.UTC(2026, 4, 31, 23, 59, 0); // one minute before a new day and a new month
const state = (settings: KeySettings, createdAt = T0) => newKeyState({ id: 'vk_000000000000000000000001', secretHash: 'ab'.repeat(32), createdAt, settings });
const item = (requestId: string, usd: number, tokens = 0): ReserveItem => ({ requestId, nanos: usdToNanos(usd), tokens, holdMs: 120_000 });

describe('budget reservations', () => {
  test('ten $0.001 reservations fit a $0.01 budget exactly; the eleventh is refused with what is left', () => {
    const s = state({ budget: { usd: 0.01, period: 'total' } });
    const outcomes = reserve(s, Array.from({ length: 11 }, (_, i) => item(`r${i}`, 0.001)), T0);
    assert.equal(outcomes.filter((o) => o.ok).length, 10);
    const last = outcomes[10];
    assert.ok(!last.ok && last.refusal.code === 'budget_exceeded');
    assert.equal(last.refusal.remainingNanos, 0);
    assert.equal(last.refusal.requestedNanos, usdToNanos(0.001));
  });

  test('settling below the reservation gives the difference back; spend never passes the budget', () => {
    const s = state({ budget: { usd: 0.01, period: 'total' } });
    reserve(s, [item('a', 0.006)], T0);
    const refused = reserve(s, [item('b', 0.005)], T0)[0];
    assert.ok(!refused.ok);
    settle(s, { requestId: 'a', runId: 'run', nanos: usdToNanos(0.002), tokens: 10 }, T0 + 1);
    const admitted = reserve(s, [item('b', 0.005)], T0 + 2)[0];
    assert.ok(admitted.ok);
    assert.equal(admitted.remainingNanos, usdToNanos(0.003));
    const view = keyView(s, T0 + 3);
    assert.equal(view.budget?.spent_usd, 0.002);
    assert.equal(view.budget?.reserved_usd, 0.005);
    assert.equal(view.budget?.remaining_usd, 0.003);
  });

  test('any interleaving of reservations and settlements at or below them keeps spend + reserved within the budget', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ usd: fc.integer({ min: 1, max: 4_000 }), actualShare: fc.double({ min: 0, max: 1, noNaN: true }), settleNow: fc.boolean() }), { maxLength: 60 }),
        (ops) => {
          const s = state({ budget: { usd: 0.01, period: 'total' } });
          const open: { id: string; nanos: number; share: number }[] = [];
          ops.forEach((op, i) => {
            const nanos = op.usd * 1_000;
            const [o] = reserve(s, [{ requestId: `r${i}`, nanos, tokens: 0, holdMs: 60_000 }], T0);
            if (o.ok) open.push({ id: `r${i}`, nanos, share: op.actualShare });
            if (op.settleNow && open.length > 0) {
              const r = open.shift()!;
              settle(s, { requestId: r.id, runId: 'x', nanos: Math.floor(r.nanos * r.share), tokens: 0 }, T0);
            }
            const view = keyView(s, T0);
            assert.ok(usdToNanos(view.budget!.spent_usd) + usdToNanos(view.budget!.reserved_usd) <= usdToNanos(0.01));
          });
        },
      ),
      { seed: 11, numRuns: 200 },
    );
  });

  test('a repeated reservation or settlement counts once (a retried POST, a replayed signal); a new run is charged again', () => {
    const s = state({ budget: { usd: 1, period: 'total' } });
    assert.deepEqual(reserve(s, [item('a', 0.1), item('a', 0.1)], T0).map((o) => o.ok && o.duplicate === true), [false, true]);
    settle(s, { requestId: 'a', runId: 'run-1', nanos: usdToNanos(0.1), tokens: 0 }, T0);
    settle(s, { requestId: 'a', runId: 'run-1', nanos: usdToNanos(0.1), tokens: 0 }, T0);
    const again = reserve(s, [item('a', 0.1)], T0)[0];
    assert.ok(again.ok && again.duplicate, 'a settled request id reserves nothing new');
    settle(s, { requestId: 'a', runId: 'run-2', nanos: usdToNanos(0.1), tokens: 0 }, T0);
    assert.equal(keyView(s, T0).spend.lifetime_usd, 0.2);
  });

  test('an unsettled reservation is released when it expires; release gives one back at once', () => {
    const s = state({ budget: { usd: 0.01, period: 'total' } });
    reserve(s, [{ ...item('a', 0.01), holdMs: 1_000 }], T0);
    assert.ok(!reserve(s, [item('b', 0.001)], T0 + 999)[0].ok);
    assert.ok(reserve(s, [item('b', 0.001)], T0 + 1_000)[0].ok);
    release(s, 'b');
    assert.equal(keyView(s, T0 + 1_000).budget?.reserved_usd, 0);
  });

  test('a daily budget starts again at 00:00 UTC, a monthly one on the 1st; reservations in flight carry over', () => {
    const daily = state({ budget: { usd: 0.01, period: 'day' } });
    reserve(daily, [item('a', 0.004)], T0);
    settle(daily, { requestId: 'a', runId: 'r', nanos: usdToNanos(0.004), tokens: 0 }, T0);
    reserve(daily, [item('b', 0.005)], T0);
    assert.ok(!reserve(daily, [item('c', 0.002)], T0)[0].ok);
    const nextDay = T0 + 60_000;
    const c = reserve(daily, [item('c', 0.002)], nextDay)[0];
    assert.ok(c.ok);
    assert.equal(c.remainingNanos, usdToNanos(0.003), 'the new day spends nothing yet; b is still reserved');
    assert.equal(periodStartFor('month', T0, 0), Date.UTC(2026, 4, 1));
    assert.equal(periodEnd('month', Date.UTC(2026, 4, 1)), Date.UTC(2026, 5, 1));
    assert.equal(periodEnd('total', 0), undefined);
    const view = keyView(daily, nextDay);
    assert.equal(view.budget?.period_start, Date.UTC(2026, 5, 1) / 1000);
    assert.equal(view.budget?.resets_at, Date.UTC(2026, 5, 2) / 1000);
  });

  test('the validator preview changes nothing', () => {
    const s = state({ budget: { usd: 0.01, period: 'total' }, rpm: 5 });
    const before = JSON.stringify(s);
    assert.ok(previewReserve(s, [item('a', 0.005)], T0)[0].ok);
    assert.equal(JSON.stringify(s), before);
  });

  test('a group stops at its first refusal: later items get that refusal untried', () => {
    const s = state({ budget: { usd: 0.01, period: 'total' } });
    const group = [0.004, 0.004, 0.004, 0.001].map((usd, i) => ({ ...item(`g${i}`, usd), group: 'batch' }));
    const outcomes = reserve(s, group, T0);
    assert.deepEqual(outcomes.map((o) => o.ok), [true, true, false, false]);
    assert.equal(keyView(s, T0).budget?.reserved_usd, 0.008, 'the 0.001 item after the refusal was not reserved');
  });
});

describe('the budget the metrics report (budgetReport)', () => {
  test("is GET /v1/keys/:id's remaining_usd after any reservations, settlements and expiries, and changes nothing", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ op: fc.constantFrom('reserve', 'settle', 'release', 'wait'), usd: fc.integer({ min: 0, max: 40 }).map((n) => n / 10_000), ms: fc.integer({ min: 0, max: 200_000 }) }), { maxLength: 40 }),
        fc.constantFrom('day', 'month', 'total'),
        (ops, period) => {
          const s = state({ budget: { usd: 0.01, period } });
          let now = T0;
          let n = 0;
          for (const o of ops) {
            if (o.op === 'wait') now += o.ms;
            else if (o.op === 'reserve') reserve(s, [item(`r${n++}`, o.usd)], now);
            else if (o.op === 'settle' && n > 0) settle(s, { requestId: `r${n - 1}`, runId: 'r', nanos: usdToNanos(o.usd / 2), tokens: 0 }, now);
            else if (o.op === 'release' && n > 0) release(s, `r${n - 1}`);
            const before = JSON.stringify(s);
            const report = budgetReport(s, now)!;
            assert.equal(JSON.stringify(s), before);
            assert.equal(report.budgetNanos, usdToNanos(0.01));
            assert.equal(report.remainingNanos, usdToNanos(keyView(s, now).budget!.remaining_usd));
          }
        },
      ),
    );
  });

  test('a key without a budget reports none', () => {
    assert.equal(budgetReport(state({ rpm: 5 }), T0), undefined);
  });
});

describe('rate limits', () => {
  test('RPM: at most rpm admissions in any rolling minute, with the wait until the oldest leaves', () => {
    const s = state({ rpm: 3 });
    const at = [0, 10_000, 20_000, 30_000, 59_999, 60_000, 60_001, 70_000];
    const admitted = at.filter((t, i) => reserve(s, [item(`r${i}`, 0)], T0 + t)[0].ok);
    assert.deepEqual(admitted, [0, 10_000, 20_000, 60_000, 70_000]);
    // In any window of RATE_WINDOW_MS there are at most 3 admissions.
    for (const start of admitted) assert.ok(admitted.filter((t) => t >= start && t < start + RATE_WINDOW_MS).length <= 3);
  });

  test('RPM: the refusal says when to come back', () => {
    const s = state({ rpm: 2 });
    reserve(s, [item('a', 0)], T0);
    reserve(s, [item('b', 0)], T0 + 5_000);
    const o = reserve(s, [item('c', 0)], T0 + 20_000)[0];
    assert.ok(!o.ok && o.refusal.code === 'rate_limit_exceeded' && o.refusal.limit === 'rpm');
    assert.equal(o.refusal.retryAfterMs, 40_000);
  });

  test('TPM: worst-case tokens count at admission and the actual ones once settled', () => {
    const s = state({ tpm: 1_000 });
    assert.ok(reserve(s, [item('a', 0, 600)], T0)[0].ok);
    const refused = reserve(s, [item('b', 0, 600)], T0 + 1)[0];
    assert.ok(!refused.ok && refused.refusal.code === 'rate_limit_exceeded' && refused.refusal.limit === 'tpm' && refused.refusal.retryAfterMs === 59_999);
    settle(s, { requestId: 'a', runId: 'r', nanos: 0, tokens: 200 }, T0 + 2);
    assert.ok(reserve(s, [item('b', 0, 600)], T0 + 3)[0].ok);
    const alone = reserve(s, [item('c', 0, 1_001)], T0 + 4)[0];
    assert.ok(!alone.ok && alone.refusal.code === 'rate_limit_exceeded' && alone.refusal.retryAfterMs === undefined, 'a request larger than the limit can never pass');
  });
});

describe('key settings', () => {
  test('revoked and expired keys are refused', () => {
    const s = state({ expiresAt: T0 + 1_000 });
    assert.equal(keyRefusal(s.record, T0), undefined);
    assert.equal(keyRefusal(s.record, T0 + 1_000)?.code, 'key_expired');
    const o = reserve(s, [item('a', 0)], T0 + 1_000)[0];
    assert.ok(!o.ok && o.refusal.code === 'key_expired');
    s.record.revokedAt = T0;
    assert.equal(keyView(s, T0).status, 'revoked');
  });

  test('a PATCH sets, changes and clears (null) settings', () => {
    const s = state({ name: 'a', rpm: 5, budget: { usd: 1, period: 'total' } });
    applySettings(s, { rpm: null, tpm: 100, budget: { usd: 2, period: 'month' } }, T0);
    assert.deepEqual(s.record.settings, { name: 'a', tpm: 100, budget: { usd: 2, period: 'month' } });
    assert.equal(s.periodStart, Date.UTC(2026, 4, 1));
  });

  test('allowed models: public names, provider/model patterns, and a public model whose targets all match', () => {
    assert.ok(modelAllowed(undefined, 'anything', []));
    assert.ok(modelAllowed(['chat'], 'chat', ['a/x']));
    assert.ok(!modelAllowed(['chat'], 'fast', ['a/x']));
    assert.ok(!modelAllowed(['chat'], 'a/x', []), 'a public name does not allow its targets by name');
    assert.ok(modelAllowed(['alpha/*'], 'alpha/model-a', []));
    assert.ok(!modelAllowed(['alpha/*'], 'beta/model-b', []));
    assert.ok(modelAllowed(['alpha/*', 'gamma/m*-c'], 'fast', ['gamma/model-c', 'alpha/model-a']));
    assert.ok(!modelAllowed(['alpha/*'], 'chat', ['alpha/model-a', 'beta/model-b']), 'every target must be allowed');
    assert.ok(modelAllowed(['*'], 'x', []));
  });
});

describe('worst-case cost', () => {
  const config = parseConfig(`
providers:
  a: { type: openai, baseURL: http://127.0.0.1:1/v1, models: { cheap: { pricing: { input: 1, output: 2 }, maxOutputTokens: 500 }, dear: { pricing: { input: 10, output: 20 }, contextWindow: 4000 }, free: {} } }
models:
  chat: { targets: [a/cheap, a/dear] }
  open: { targets: [a/cheap, a/free] }
`);
  const routing = config.routing;

  test('the prompt bound is its UTF-8 bytes (every tokenizer spends at least a byte a token), media at a fixed allowance', () => {
    assert.equal(utf8Length('aé€😀'), 1 + 2 + 3 + 4);
    const text = promptTokenBound({ messages: [{ role: 'user', content: 'Hello' }] });
    assert.equal(text, utf8Length(JSON.stringify([[{ role: 'user', content: 'Hello' }], null, null, null, null])) + PROMPT_OVERHEAD_TOKENS);
    const image = promptTokenBound({ messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${'A'.repeat(100_000)}` } }] }] });
    assert.ok(image >= MEDIA_PART_TOKENS && image < MEDIA_PART_TOKENS + 2_000, 'an inline image counts its allowance, not its base64 bytes');
    // Multi-byte scripts count more per character than English: the bound holds for them too.
    assert.ok(promptTokenBound({ messages: [{ role: 'user', content: '你好'.repeat(100) }] }) >= 600);
  });

  test('the most expensive target the plan could use, with max_tokens or the model limit, times n', () => {
    const prompt = promptTokenBound({ messages: [{ role: 'user', content: 'Hi' }] });
    const req = { model: 'chat', messages: [{ role: 'user' as const, content: 'Hi' }] };
    const limitOnly = worstCase(req, routing);
    // cheap: prompt + 500 out at (1, 2); dear: prompt + 4000 out at (10, 20) — dear wins.
    assert.equal(limitOnly.nanos, Math.round((prompt * 10 + 4_000 * 20) * 1_000));
    assert.equal(limitOnly.tokens, prompt + 4_000);
    const capped = worstCase({ ...req, max_tokens: 100, n: 2 }, routing);
    assert.equal(capped.nanos, Math.round((prompt * 10 + 200 * 20) * 1_000));
    assert.deepEqual(worstCase({ ...req, model: 'open' }, routing).unpriced, ['a/free']);
    assert.deepEqual(worstCase({ ...req, model: 'open' }, routing).unbounded, ['a/free']);
    // provider.only narrows the candidates, as it narrows the plan.
    assert.equal(worstCase({ ...req, provider: { only: ['a'] }, models: [] }, routing).nanos, limitOnly.nanos);
  });

  test('a budgeted key refuses unpriced or unbounded requests; a key refuses models it may not use', () => {
    const req = { model: 'open', messages: [{ role: 'user' as const, content: 'Hi' }] };
    const wc = worstCase(req, routing);
    assert.equal(keyedRequestProblem({ budgeted: true, tpm: false }, req, routing, wc)?.code, 'model_not_priced');
    assert.equal(keyedRequestProblem({ budgeted: false, tpm: true }, req, routing, wc)?.code, 'max_tokens_required');
    assert.equal(keyedRequestProblem({ budgeted: false, tpm: false }, req, routing, wc), undefined);
    const problem = keyedRequestProblem({ models: ['chat'], budgeted: false, tpm: false }, req, routing);
    assert.equal(problem?.status, 403);
    assert.equal(problem?.code, 'model_not_allowed');
  });
});
