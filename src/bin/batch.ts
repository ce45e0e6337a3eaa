// `npm run batch -- file.jsonl [--window 24h]`: submits a batch input file to a running Keel
// (KEEL_URL, default http://127.0.0.1:3000) with the official openai SDK, shows a live progress
// bar until the batch finishes, then prints the output and error file ids.
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import OpenAI from 'openai';

const TERMINAL = new Set(['completed', 'failed', 'expired', 'cancelled']);
const POLL_MS = 1_000;
const QUIET_LINE_MS = 30_000;

function bar(done: number, total: number, width = 30): string {
  const share = total > 0 ? Math.min(1, done / total) : 0;
  const full = Math.round(share * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${(share * 100).toFixed(1).padStart(5)}%`;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const windowArg = args.indexOf('--window');
  const path = args.find((a, i) => !a.startsWith('--') && !(windowArg >= 0 && i === windowArg + 1));
  if (!path) {
    console.error('usage: npm run batch -- <file.jsonl> [--window 24h]');
    return 2;
  }
  const completionWindow = windowArg >= 0 ? args[windowArg + 1] : '24h';
  const baseURL = `${(process.env.KEEL_URL ?? 'http://127.0.0.1:3000').replace(/\/$/, '')}/v1`;
  const client = new OpenAI({ baseURL, apiKey: process.env.OPENAI_API_KEY ?? 'keel', maxRetries: 5 });

  const file = await client.files.create({ file: createReadStream(path), purpose: 'batch' });
  console.log(`uploaded ${basename(path)} as ${file.id} (${file.bytes} bytes)`);
  const created = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: completionWindow as '24h' });
  console.log(`batch ${created.id}`);
  const started = Date.now();
  const tty = process.stdout.isTTY;
  let batch = created;
  let lastKey = '';
  let lastPrinted = 0;
  // Bounded by the completion window plus finalizing time: the batch cannot run longer than that.
  const deadline = Date.now() + ((created.expires_at ?? 0) * 1000 - Date.now()) + 3_600_000;
  while (!TERMINAL.has(batch.status) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    batch = await client.batches.retrieve(created.id);
    const c = batch.request_counts ?? { total: 0, completed: 0, failed: 0 };
    const secs = (Date.now() - started) / 1000;
    const rate = secs > 0 ? (c.completed + c.failed) / secs : 0;
    const line = `${bar(c.completed + c.failed, c.total)} ${c.completed + c.failed}/${c.total} ok ${c.completed} failed ${c.failed}  ${batch.status}  ${rate.toFixed(0)} req/s  ${secs.toFixed(0)}s`;
    // Without a TTY (CI logs, pipes): a line when the counts or the status change, else one every
    // 30 s. The line itself always changes (elapsed seconds), so comparing lines would print one a poll.
    const key = `${c.completed} ${c.failed} ${c.total} ${batch.status}`;
    if (tty) process.stdout.write(`\r${line}\x1b[K`);
    else if (key !== lastKey || Date.now() - lastPrinted >= QUIET_LINE_MS) {
      console.log(line);
      lastKey = key;
      lastPrinted = Date.now();
    }
  }
  if (tty) process.stdout.write('\n');
  console.log(`status ${batch.status} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  for (const e of batch.errors?.data ?? []) console.log(`  error line ${e.line ?? '-'}: ${e.code}: ${e.message}`);
  console.log(`output_file_id ${batch.output_file_id ?? '-'}`);
  console.log(`error_file_id  ${batch.error_file_id ?? '-'}`);
  if (batch.output_file_id) console.log(`download: curl ${baseURL}/files/${batch.output_file_id}/content`);
  return batch.status === 'completed' ? 0 : 1;
}

process.exitCode = await main().catch((err) => {
  console.error(`keel batch: ${(err as Error).message}`);
  return 1;
});
