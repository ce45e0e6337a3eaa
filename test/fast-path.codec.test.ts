// test/fast-path.test.ts with the codec on: local calls, eager starts and early answers
// (a sink, in-process) work the same with every payload encrypted.
process.env.KEEL_TEST_CODEC = '1';
await import('./fast-path.test.js');
