// The provider worker's slot supplier on a fake clock: its concurrency cap, its sliding window
// (polls waiting for a task and calls not sent yet count, idle spells grant no burst), and the
// share of a limit per worker.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ActivitySlotInfo, SlotPermit } from '@temporalio/worker';
import { ProviderSlotSupplier, rateShare } from '../src/worker/provider-slots.js';

const info: ActivitySlotInfo = { type: 'activity', activityType: 'callProvider' };
const ctx = { slotType: 'activity', taskQueue: 'q', workerIdentity: 'w', workerBuildId: '', isSticky: false } as const;

function supplier(opts: { maxConcurrent: number; perWindow?: number; windowMs?: number; leadMs?: number }) {
  let now = 0;
  const s = new ProviderSlotSupplier({ ...opts, now: () => now });
  return {
    s,
    at: (t: number) => (now = t),
    take: () => s.tryReserveSlot(ctx),
    /** A poll returns a task for `p`; the activity runs and (unless `send` is false) sends its request. */
    receive: (p: SlotPermit, send = true) => {
      s.markSlotUsed({ slotInfo: info, permit: p });
      s.callStarted();
      if (send) s.callSent();
    },
    end: (p: SlotPermit) => {
      s.callEnded();
      s.releaseSlot({ slotInfo: info, permit: p });
    },
  };
}

describe('rateShare', () => {
  test('splits a limit between workers; whole calls per second, one call per W/R s below that', () => {
    assert.deepEqual(rateShare(4, 2, 0), { perWindow: 2, windowMs: 1000 });
    assert.deepEqual(rateShare(5, 2, 100), { perWindow: 2, windowMs: 1100 });
    assert.deepEqual(rateShare(10, 1, 100), { perWindow: 10, windowMs: 1100 });
    assert.deepEqual(rateShare(1, 4, 0), { perWindow: 1, windowMs: 4000 });
  });
});

describe('ProviderSlotSupplier', () => {
  test('concurrency: reserved and running slots both count; a release frees one', async () => {
    const { s, take, receive, end } = supplier({ maxConcurrent: 2 });
    const a = take()!;
    const b = take()!;
    assert.ok(a && b);
    assert.equal(take(), null);
    receive(a);
    assert.equal(take(), null, 'a running task still holds its slot');
    const waiting = s.reserveSlot(ctx, new AbortController().signal);
    end(a);
    assert.ok(await waiting);
  });

  test('window: polls waiting, calls not sent and calls sent in the last window count; no burst after idling', () => {
    const { s, at, take, receive, end } = supplier({ maxConcurrent: 100, perWindow: 2, windowMs: 1000 });
    at(10_000); // a long idle spell: still only perWindow
    const a = take()!;
    const b = take()!;
    assert.equal(take(), null, 'two polls waiting fill the window');
    receive(a, false);
    assert.equal(take(), null, 'a started, its request not sent yet');
    at(10_100);
    s.callSent(); // a's request goes out at 10 100
    end(a);
    assert.equal(take(), null, 'a finished, but it stays in the window');
    s.releaseSlot({ permit: b }); // b's poll ended without a task: its place is free again
    const c = take()!;
    assert.ok(c);
    at(10_500);
    receive(c);
    end(c);
    at(11_099);
    assert.equal(take(), null);
    at(11_100); // a left the window
    assert.ok(take());
    assert.equal(take(), null, 'c is still in the window');
  });

  test('a task received but never run holds its place until its slot is released', () => {
    const { s, take } = supplier({ maxConcurrent: 100, perWindow: 1, windowMs: 1000 });
    const a = take()!;
    s.markSlotUsed({ slotInfo: info, permit: a });
    assert.equal(take(), null);
    s.releaseSlot({ slotInfo: info, permit: a }); // e.g. cancelled before it started
    assert.ok(take());
  });

  test('waiters are woken when the oldest send leaves the window, in order; an abort withdraws one', async () => {
    const s = new ProviderSlotSupplier({ maxConcurrent: 100, perWindow: 1, windowMs: 30 });
    const a = s.tryReserveSlot(ctx)!;
    s.markSlotUsed({ slotInfo: info, permit: a });
    s.callStarted();
    const aborted = new AbortController();
    const first = s.reserveSlot(ctx, aborted.signal);
    const second = s.reserveSlot(ctx, new AbortController().signal);
    aborted.abort();
    await assert.rejects(first);
    const sentAt = performance.now();
    s.callSent(); // the call is still running: only the window's end can wake the waiter
    const p = await second;
    assert.ok(performance.now() - sentAt >= 29, 'granted once the send left the window');
    s.callEnded();
    s.releaseSlot({ slotInfo: info, permit: a });
    s.releaseSlot({ permit: p });
  });

  test('polling ahead: a slot is granted `leadMs` before the window frees up, and that call waits for its turn to send', async () => {
    const { s, at, take, receive, end } = supplier({ maxConcurrent: 100, perWindow: 1, windowMs: 1000, leadMs: 100 });
    at(0);
    const a = take()!;
    receive(a); // a's request went out at 0
    end(a);
    at(899);
    assert.equal(take(), null, 'a is in the window beyond the lead');
    at(900);
    const b = take()!;
    assert.ok(b, 'a leaves the window within the lead: b may poll');
    assert.equal(take(), null, 'only one call per window');
    s.markSlotUsed({ slotInfo: info, permit: b });
    s.callStarted();
    let turn = false;
    const waiting = s.sendTurn().then(() => (turn = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(turn, false, 'b may not send while a is in the window');
    at(1000); // a leaves the window: the supplier's timer (set for 100 ms after a's send) clears b
    await waiting;
    assert.equal(turn, true);
    s.callSent();
    s.callEnded();
    s.releaseSlot({ slotInfo: info, permit: b });
  });

  test('sendTurn: never more than perWindow calls cleared or sent within a window', async () => {
    const s = new ProviderSlotSupplier({ maxConcurrent: 100, perWindow: 2, windowMs: 40 });
    const times: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        s.callStarted();
        await s.sendTurn();
        times.push(performance.now() - t0);
        s.callSent();
        s.callEnded();
      }),
    );
    times.sort((x, y) => x - y);
    for (let i = 2; i < times.length; i++) assert.ok(times[i] - times[i - 2] >= 39, `sends at ${times.map((t) => t.toFixed(0))}`);
  });
});
