// The gateway's HTTP API as the page uses it (same origin, JSON). Every call is
// a plain `fetch`, so the fetch instrumentation traces it and, inside the Buy
// click's context, injects `traceparent` and `baggage`.

export interface Config {
  /** Base URL of the Jaeger UI; a trace is at `${jaegerUrl}/trace/${traceId}`. */
  jaegerUrl: string;
}

export interface CatalogItem {
  id: number;
  name: string;
  /** Integer amount in cents. */
  price: number;
}

export interface CheckoutLine {
  id: number;
  quantity: number;
}

/** The 202 answer to POST /api/checkout. */
export interface Accepted {
  orderId: string;
  totalAmount: number;
  traceId: string;
}

/** GET /api/orders/{orderId} once stock-service has processed the order. */
export interface Outcome {
  orderId: string;
  /** `duplicate`: a retry applied under another order id, `duplicateOf`. */
  status: 'applied' | 'rejected' | 'duplicate';
  reason: string | null;
  totalAmount: number;
  processedAt: number;
  duplicateOf: string | null;
}

/** A non-2xx answer, with the `{"error":{"code","message"}}` body when there is one. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Seconds from a Retry-After header, when the gateway sent one. */
  readonly retryAfter: number | null;

  constructor(status: number, code: string, message: string, retryAfter: number | null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function malformed(what: string): Error {
  return new Error(`The gateway sent a malformed ${what}.`);
}

async function failure(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body: unknown = await response.json();
    if (isObject(body) && isObject(body.error)) {
      if (typeof body.error.code === 'string') code = body.error.code;
      if (typeof body.error.message === 'string') message = body.error.message;
    }
  } catch {
    // Not JSON: keep the status line.
  }
  const header = response.headers.get('retry-after');
  const seconds = header === null ? NaN : Number(header);
  return new ApiError(response.status, code, message, Number.isFinite(seconds) ? seconds : null);
}

async function getJson(path: string): Promise<unknown> {
  const response = await fetch(path, { headers: { accept: 'application/json' } });
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function fetchConfig(): Promise<Config> {
  const body = await getJson('/config.json');
  if (!isObject(body) || typeof body.jaegerUrl !== 'string') throw malformed('config.json');
  return { jaegerUrl: body.jaegerUrl.replace(/\/+$/, '') };
}

function isCatalogItem(value: unknown): value is CatalogItem {
  return (
    isObject(value) &&
    Number.isInteger(value.id) &&
    typeof value.name === 'string' &&
    Number.isInteger(value.price)
  );
}

export async function fetchCatalog(): Promise<CatalogItem[]> {
  const body = await getJson('/api/catalog');
  if (!isObject(body) || !Array.isArray(body.items) || !body.items.every(isCatalogItem)) {
    throw malformed('catalog');
  }
  return body.items;
}

export async function postCheckout(items: CheckoutLine[]): Promise<Accepted> {
  const response = await fetch('/api/checkout', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ items }),
  });
  if (response.status !== 202) throw await failure(response);
  const body: unknown = await response.json();
  if (
    !isObject(body) ||
    typeof body.orderId !== 'string' ||
    !Number.isInteger(body.totalAmount) ||
    typeof body.traceId !== 'string'
  ) {
    throw malformed('checkout answer');
  }
  return { orderId: body.orderId, totalAmount: body.totalAmount as number, traceId: body.traceId };
}

/** The order's outcome, or null while stock-service has not processed it (404). */
export async function fetchOutcome(orderId: string): Promise<Outcome | null> {
  const response = await fetch(`/api/orders/${encodeURIComponent(orderId)}`, {
    headers: { accept: 'application/json' },
  });
  if (response.status === 404) {
    // Drain the body so the fetch span ends promptly.
    await response.text();
    return null;
  }
  if (!response.ok) throw await failure(response);
  const body: unknown = await response.json();
  if (
    !isObject(body) ||
    typeof body.orderId !== 'string' ||
    (body.status !== 'applied' && body.status !== 'rejected' && body.status !== 'duplicate') ||
    !(body.reason === null || body.reason === undefined || typeof body.reason === 'string') ||
    !Number.isInteger(body.totalAmount)
  ) {
    throw malformed('order');
  }
  return {
    orderId: body.orderId,
    status: body.status,
    reason: typeof body.reason === 'string' ? body.reason : null,
    totalAmount: body.totalAmount as number,
    processedAt: typeof body.processedAt === 'number' ? body.processedAt : 0,
    duplicateOf: typeof body.duplicateOf === 'string' ? body.duplicateOf : null,
  };
}

const POLL_FIRST_MS = 50;
const POLL_MAX_MS = 500;
export const POLL_GIVE_UP_MS = 15_000;

export interface PollResult {
  outcome: Outcome | null;
  polls: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Polls GET /api/orders/{orderId} until stock-service has recorded the order:
 * 50 ms, doubling to 500 ms between polls, for at most 15 s (then `outcome`
 * is null). 404 and 503 mean "not yet"; any other error is thrown.
 */
export async function pollOutcome(orderId: string): Promise<PollResult> {
  const deadline = performance.now() + POLL_GIVE_UP_MS;
  let delay = POLL_FIRST_MS;
  let polls = 0;
  for (;;) {
    polls += 1;
    try {
      const outcome = await fetchOutcome(orderId);
      if (outcome !== null) return { outcome, polls };
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 503)) throw error;
    }
    const left = deadline - performance.now();
    if (left <= 0) return { outcome: null, polls };
    await sleep(Math.min(delay, left));
    delay = Math.min(delay * 2, POLL_MAX_MS);
  }
}
