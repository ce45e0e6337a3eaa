// OpenTelemetry tracing: one trace per request, from the HTTP request (continuing an incoming W3C
// `traceparent`) through the workflow and each activity to the provider call, exported over
// OTLP/HTTP (JSON) when an endpoint is configured. Temporal carries the context between them in
// its headers (@temporalio/interceptors-opentelemetry): src/observability/temporal-tracing.ts
// puts those interceptors on every client and worker.
import { context, propagation, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { TracingSettings } from '../config/schema.js';

let propagationInstalled = false;

/**
 * The process-wide parts every tracer relies on: the async context (a span stays current across
 * awaits) and the W3C propagator (how the interceptors write and read Temporal headers, and how the
 * API reads `traceparent`). Neither records anything on its own; the tracer provider stays Keel's.
 */
function installPropagation(): void {
  if (propagationInstalled) return;
  propagationInstalled = true;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }));
}

export class KeelTracing {
  readonly tracer: Tracer;
  /** Workflow spans, exported through the worker's `exporter` sink, go through this too. */
  readonly spanProcessor: SpanProcessor;
  readonly resource: Resource;
  private readonly provider: BasicTracerProvider;

  private constructor(readonly url: string, serviceName: string, role: string) {
    installPropagation();
    this.resource = new Resource({ 'service.name': serviceName, 'keel.role': role });
    // JSON, not protobuf: every OTLP/HTTP receiver takes it (the collector, Jaeger, Tempo), and
    // it needs no protobuf encoder here. Headers come from OTEL_EXPORTER_OTLP_HEADERS.
    this.spanProcessor = new BatchSpanProcessor(new OTLPTraceExporter({ url }));
    this.provider = new BasicTracerProvider({ resource: this.resource, spanProcessors: [this.spanProcessor] });
    this.tracer = this.provider.getTracer('keel');
  }

  /** Tracing for this process, or undefined when no endpoint is configured (nothing is traced). */
  static start(settings: TracingSettings, role: string): KeelTracing | undefined {
    return settings.tracesUrl ? new KeelTracing(settings.tracesUrl, settings.serviceName, role) : undefined;
  }

  /** Sends the spans ended so far. */
  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  /** Sends what is left and stops. */
  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}
