// Loaded by path (Temporal's `failureConverterPath`), both in the workflow bundle and in the
// worker and client: with the codec on, a failure's message and stack trace travel as an
// encoded payload, which the codec then encrypts — a provider's error text can quote a prompt.
// Workflow-safe: the bundle imports it, so it imports nothing but @temporalio/common.
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
