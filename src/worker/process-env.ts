// How a worker process is launched (`npm run worker`; the tests' and benchmarks' worker role).
// Measured on a 2,000-line batch (BENCHMARKS.md, "Batches"): peak RSS 547 MB with Node's and
// glibc's defaults, 280 MB with these, at the same throughput. glibc gives each thread that
// allocates its own malloc arena (Temporal core's runtime threads, V8's, libuv's), and freed
// memory stays in them; V8's default young generation is sized for throughput on big machines,
// once per isolate (the main thread and every workflow thread). The old-space cap leaves ~3x
// the main heap a batch needs.
// package.json's "worker" script sets the same values (test/config.test.ts checks they agree).
export const WORKER_PROCESS_ENV = {
  MALLOC_ARENA_MAX: '1',
  NODE_OPTIONS: '--max-semi-space-size=1 --max-old-space-size=256',
} as const;
