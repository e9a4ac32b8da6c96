// Browser tracing with the OpenTelemetry web SDK. Imported first by main.ts so
// zone.js and the fetch instrumentation patch the page before any request.
//
// - Resource: service.name=storefront, service.version from web/package.json.
// - Context: ZoneContextManager, so the Buy click's context stays active across
//   the awaits of the checkout and the polls. zone.js can only follow promises it
//   created, which a native `async` function's awaits are not: the build lowers
//   async/await to generators over the global (zone-aware) Promise for that.
// - Propagation: W3C trace context + W3C baggage; fetch injects both into
//   same-origin requests.
// - Export: OTLP/HTTP JSON to the gateway's relay at /v1/traces (same origin),
//   batched; flushed after every click span and when the page is hidden.

// zone.js first: it replaces the global Promise and patches the browser's async
// APIs, which must happen before any other module runs.
import 'zone.js';
import {
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
} from '@opentelemetry/api';
import { ZoneContextManager } from '@opentelemetry/context-zone';
import {
  CompositePropagator,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { DocumentLoadInstrumentation } from '@opentelemetry/instrumentation-document-load';
import { FetchInstrumentation } from '@opentelemetry/instrumentation-fetch';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  type ReadableSpan,
  type Span as SdkSpan,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { WebTracerProvider } from '@opentelemetry/sdk-trace-web';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';

/** Replaced by the build with web/package.json's version. */
declare const STOREFRONT_VERSION: string;

export const SERVICE_NAME = 'storefront';
export const CLICK_SPAN_NAME = 'checkout click';
/** The baggage entry every click carries, so the backend sees baggage from the browser. */
export const SESSION_BAGGAGE_KEY = 'storefront.session';

/** A random id per page load (crypto.randomUUID needs a secure context; this does not). */
function randomHex(bytes: number): string {
  const buffer = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buffer, (b) => b.toString(16).padStart(2, '0')).join('');
}

export const sessionId = randomHex(8);

/**
 * Counts the open spans of each trace, so a click can be flushed once all its
 * spans have ended: the fetch instrumentation ends a fetch span some 300 ms
 * after the response (it waits for the resource timing), after the click span.
 */
class OpenSpans implements SpanProcessor {
  private readonly open = new Map<string, number>();
  private readonly waiters = new Map<string, Array<() => void>>();

  onStart(span: SdkSpan): void {
    const { traceId } = span.spanContext();
    this.open.set(traceId, (this.open.get(traceId) ?? 0) + 1);
  }

  onEnd(span: ReadableSpan): void {
    const { traceId } = span.spanContext();
    const left = (this.open.get(traceId) ?? 1) - 1;
    if (left > 0) {
      this.open.set(traceId, left);
      return;
    }
    this.open.delete(traceId);
    for (const resolve of this.waiters.get(traceId) ?? []) resolve();
    this.waiters.delete(traceId);
  }

  /** Resolves when the trace has no open span left, or after `timeoutMs`. */
  settled(traceId: string, timeoutMs: number): Promise<void> {
    if (!this.open.has(traceId)) return Promise.resolve();
    return new Promise((resolve) => {
      const waiters = this.waiters.get(traceId) ?? [];
      waiters.push(resolve);
      this.waiters.set(traceId, waiters);
      setTimeout(resolve, timeoutMs);
    });
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

const openSpans = new OpenSpans();

const provider = new WebTracerProvider({
  resource: resourceFromAttributes({
    [ATTR_SERVICE_NAME]: SERVICE_NAME,
    [ATTR_SERVICE_VERSION]: STOREFRONT_VERSION,
  }),
  spanProcessors: [
    new BatchSpanProcessor(
      // The exporter's fetch transport needs an absolute URL.
      new OTLPTraceExporter({ url: new URL('/v1/traces', location.origin).href }),
      // Small batches keep each export under the browser's 64 KiB keepalive budget.
      { maxQueueSize: 512, maxExportBatchSize: 32, scheduledDelayMillis: 2000 },
    ),
    openSpans,
  ],
});

provider.register({
  contextManager: new ZoneContextManager(),
  propagator: new CompositePropagator({
    propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
  }),
});

registerInstrumentations({
  tracerProvider: provider,
  instrumentations: [
    new DocumentLoadInstrumentation(),
    new FetchInstrumentation({
      // The exporter's own requests and the page's configuration are not traced.
      ignoreUrls: [/\/v1\/traces(?:[?#]|$)/, /\/config\.json(?:[?#]|$)/],
    }),
  ],
});

const tracer = trace.getTracer(SERVICE_NAME, STOREFRONT_VERSION);

/** Sends the spans ended so far now, rather than at the next batch tick. */
export function flush(): Promise<void> {
  return provider.forceFlush().catch(() => {
    // The exporter logs through the diag API; a lost batch must not break the page.
  });
}

// A page going away (tab closed or switched, navigation) exports what it has;
// the exporter's keepalive fetch outlives the page.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden') void flush();
});
window.addEventListener('pagehide', () => void flush());

/** How long a click's trace may wait for its last fetch spans before the flush. */
const SETTLE_TIMEOUT_MS = 2000;

/**
 * Runs `work` inside a new root span `checkout click` (kind INTERNAL), active
 * together with the session's baggage, so every fetch made in it (also after
 * awaits) is a child CLIENT span carrying `traceparent` and `baggage`. The span
 * ends when `work` settles (an exception is recorded and sets status ERROR);
 * once the trace's last fetch span has ended too, the spans are flushed to the
 * relay (in the background: the caller does not wait for the export).
 */
export async function inClickSpan<T>(
  attributes: Attributes,
  work: (span: Span) => Promise<T>,
): Promise<T> {
  const baggage = propagation.createBaggage({ [SESSION_BAGGAGE_KEY]: { value: sessionId } });
  const parent = propagation.setBaggage(context.active(), baggage);
  const options = { kind: SpanKind.INTERNAL, root: true, attributes };
  return tracer.startActiveSpan(CLICK_SPAN_NAME, options, parent, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      span.recordException(error instanceof Error ? error : message);
      span.setStatus({ code: SpanStatusCode.ERROR, message });
      throw error;
    } finally {
      span.end();
      const { traceId } = span.spanContext();
      void openSpans.settled(traceId, SETTLE_TIMEOUT_MS).then(flush);
    }
  });
}
