export {
  startFakeProvider,
  type FakeCall,
  type FakeProvider,
  type FakeProviderOptions,
  type WaitForCallsOptions,
} from './fake-provider.js';
export {
  BehaviourBook,
  delayBefore,
  fakeLatencySchema,
  fakeModelBehaviourSchema,
  fakeStepSchema,
  sampleLatency,
  type FakeLatency,
  type FakeModelBehaviour,
  type FakeStep,
} from './behaviour.js';
export { composeAnswer, estimateTokens, type FakeProviderType, type NeutralRequest, type NeutralAnswer, type WireFormat } from './wire.js';
export { openaiWire } from './wire-openai.js';
export { anthropicWire } from './wire-anthropic.js';
export { geminiWire } from './wire-gemini.js';
