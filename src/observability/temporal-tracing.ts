// Temporal's OpenTelemetry interceptors on Keel's clients and workers: a client's start, signal or
// update carries the current span in the Temporal headers, the workflow continues it (its spans
// are exported by the worker through the `exporter` sink), and each activity — on a provider's task
// queue or as a local activity — runs as a child of the workflow's span.
import { createRequire } from 'node:module';
import type { ClientInterceptors } from '@temporalio/client';
import type { ActivityInterceptorsFactory, InjectedSinks } from '@temporalio/worker';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry/lib/client/index.js';
import {
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
  makeWorkflowExporter,
} from '@temporalio/interceptors-opentelemetry/lib/worker/index.js';
import type { OpenTelemetryWorkflowExporter } from '@temporalio/interceptors-opentelemetry/lib/workflow/definitions.js';
import type { KeelTracing } from './tracing.js';

/** The workflow interceptors' module, compiled into the workflow bundle when tracing is on. */
export const WORKFLOW_TRACING_INTERCEPTORS = createRequire(import.meta.url).resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/** For a Client: its starts, signals, queries and updates carry the current trace. */
export function tracingClientInterceptors(tracing: KeelTracing | undefined): { interceptors?: ClientInterceptors } {
  if (!tracing) return {};
  return { interceptors: { workflow: [new OpenTelemetryWorkflowClientInterceptor({ tracer: tracing.tracer })] } };
}

/** For a Worker: its activities continue the workflow's trace, and workflow spans leave through a sink. */
export function tracingWorkerParts(tracing: KeelTracing | undefined): { activity: ActivityInterceptorsFactory[]; sinks: InjectedSinks<{ exporter: OpenTelemetryWorkflowExporter }> | undefined } {
  if (!tracing) return { activity: [], sinks: undefined };
  return {
    activity: [
      (ctx) => ({
        inbound: new OpenTelemetryActivityInboundInterceptor(ctx, { tracer: tracing.tracer }),
        outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
      }),
    ],
    sinks: { exporter: makeWorkflowExporter(tracing.spanProcessor, tracing.resource) },
  };
}
