// test/worker-crash.test.ts with the codec on: a killed worker's or gateway's request completes
// on the next one, its encrypted history replayed there.
process.env.KEEL_TEST_CODEC = '1';
await import('./worker-crash.test.js');
