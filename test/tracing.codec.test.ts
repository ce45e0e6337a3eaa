// test/tracing.e2e.test.ts with the codec on: one trace from the HTTP request through the
// workflow and its activities to the provider call while every payload is encrypted, and no
// secret in the decoded histories either.
process.env.KEEL_TEST_CODEC = '1';
await import('./tracing.e2e.test.js');
