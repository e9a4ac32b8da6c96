// The storefront: catalog, cart, Buy, and the order's outcome with the browser's
// latencies and a link to the trace. Tracing is set up first (see tracing.ts).

import { flush, inClickSpan, sessionId } from './tracing';
import {
  ApiError,
  fetchCatalog,
  fetchConfig,
  pollOutcome,
  postCheckout,
  POLL_GIVE_UP_MS,
  type CatalogItem,
  type CheckoutLine,
} from './api';

const MAX_QUANTITY = 99;

function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`#${id} is missing from index.html`);
  return element as T;
}

const ui = {
  error: byId<HTMLParagraphElement>('error'),
  catalog: byId<HTMLUListElement>('catalog'),
  cartHeading: byId<HTMLHeadingElement>('cart-heading'),
  cartEmpty: byId<HTMLParagraphElement>('cart-empty'),
  cartLines: byId<HTMLUListElement>('cart-lines'),
  cartTotal: byId<HTMLOutputElement>('cart-total'),
  buy: byId<HTMLButtonElement>('buy'),
  statusMessage: byId<HTMLParagraphElement>('status-message'),
  order: byId<HTMLElement>('order'),
  orderId: byId<HTMLElement>('order-id'),
  orderTotal: byId<HTMLElement>('order-total'),
  orderStatus: byId<HTMLElement>('order-status'),
  orderReason: byId<HTMLElement>('order-reason'),
  latencyAccepted: byId<HTMLElement>('latency-accepted'),
  latencyFinal: byId<HTMLElement>('latency-final'),
  traceId: byId<HTMLElement>('trace-id'),
  traceLink: byId<HTMLAnchorElement>('trace-link'),
};

const state = {
  catalog: new Map<number, CatalogItem>(),
  /** Item id to quantity, in the order items were first added. */
  cart: new Map<number, number>(),
  /** From the click on Buy until the order's final status is shown. */
  checkoutInFlight: false,
  /** From the click on Buy until the 202: the cart being sent can't change. */
  cartLocked: false,
  jaegerUrl: null as string | null,
  traceId: null as string | null,
};

/** 599 → "5.99". */
function formatCents(cents: number): string {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className !== undefined) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(message: string): void {
  ui.error.textContent = message;
}

function clearError(): void {
  ui.error.textContent = '';
}

function say(message: string): void {
  ui.statusMessage.textContent = message;
}

function describe(error: unknown): string {
  if (error instanceof ApiError) {
    const retry = error.retryAfter === null ? '' : ` Try again in ${error.retryAfter} s.`;
    return `${error.message} (${error.code}, HTTP ${error.status}).${retry}`;
  }
  if (error instanceof TypeError) return 'Could not reach the gateway (network error).';
  return error instanceof Error ? error.message : String(error);
}

// ---- catalog -------------------------------------------------------------

function renderCatalog(): void {
  const rows = [...state.catalog.values()].map((item) => {
    const row = element('li', 'catalog-item');
    row.append(
      element('span', 'item-name', item.name),
      element('span', 'price', formatCents(item.price)),
    );
    const add = element('button', 'add', 'Add to cart');
    add.type = 'button';
    add.dataset.itemId = String(item.id);
    add.setAttribute('aria-label', `Add ${item.name} to cart`);
    row.append(add);
    return row;
  });
  if (rows.length === 0) rows.push(element('li', 'muted', 'The catalog is empty.'));
  ui.catalog.replaceChildren(...rows);
  ui.catalog.removeAttribute('aria-busy');
}

async function loadCatalog(): Promise<void> {
  try {
    const items = await fetchCatalog();
    state.catalog = new Map(items.map((item) => [item.id, item]));
    renderCatalog();
    render();
  } catch (error) {
    const row = element('li', 'muted', 'The catalog could not be loaded. ');
    const retry = element('button', 'link-button', 'Try again');
    retry.type = 'button';
    retry.addEventListener('click', () => {
      clearError();
      ui.catalog.replaceChildren(element('li', 'muted', 'Loading the catalog…'));
      void loadCatalog();
    });
    row.append(retry);
    ui.catalog.replaceChildren(row);
    ui.catalog.removeAttribute('aria-busy');
    showError(`Could not load the catalog: ${describe(error)}`);
  }
}

ui.catalog.addEventListener('click', (event) => {
  const button = (event.target as Element).closest<HTMLButtonElement>('button[data-item-id]');
  if (button === null || state.cartLocked) return;
  const id = Number(button.dataset.itemId);
  const item = state.catalog.get(id);
  if (item === undefined) return;
  const quantity = Math.min((state.cart.get(id) ?? 0) + 1, MAX_QUANTITY);
  state.cart.set(id, quantity);
  say(`${item.name} added; ${quantity} in the cart.`);
  render();
});

// ---- cart ----------------------------------------------------------------

function cartLines(): CheckoutLine[] {
  return [...state.cart].map(([id, quantity]) => ({ id, quantity }));
}

function cartTotal(): number {
  let total = 0;
  for (const [id, quantity] of state.cart) total += (state.catalog.get(id)?.price ?? 0) * quantity;
  return total;
}

function cartButton(id: number, action: string, text: string, label: string): HTMLButtonElement {
  const button = element('button', `qty-button ${action}`, text);
  button.type = 'button';
  button.dataset.cartItemId = String(id);
  button.dataset.cartAction = action;
  button.setAttribute('aria-label', label);
  button.disabled = state.cartLocked;
  return button;
}

function renderCart(): void {
  // Re-rendering replaces the buttons: keep keyboard focus where it was.
  const focused = document.activeElement as HTMLElement | null;
  const focusedKey =
    focused !== null && ui.cartLines.contains(focused)
      ? `${focused.dataset.cartItemId}:${focused.dataset.cartAction}`
      : null;

  const rows = [...state.cart].map(([id, quantity]) => {
    const item = state.catalog.get(id);
    const name = item?.name ?? `Item ${id}`;
    const row = element('li', 'cart-line');
    const increase = cartButton(id, 'increase', '+', `Increase ${name} quantity`);
    increase.disabled ||= quantity >= MAX_QUANTITY;
    const qty = element('span', 'qty');
    qty.append(
      cartButton(id, 'decrease', '−', `Decrease ${name} quantity`),
      element('output', 'qty-value', String(quantity)),
      increase,
    );
    row.append(
      element('span', 'item-name', name),
      qty,
      element('span', 'price', formatCents((item?.price ?? 0) * quantity)),
      cartButton(id, 'remove', 'Remove', `Remove ${name} from cart`),
    );
    return row;
  });
  ui.cartLines.replaceChildren(...rows);
  ui.cartEmpty.hidden = rows.length > 0;
  ui.cartTotal.value = formatCents(cartTotal());

  if (focusedKey !== null) {
    const [id, action] = focusedKey.split(':');
    const again = ui.cartLines.querySelector<HTMLButtonElement>(
      `button[data-cart-item-id="${id}"][data-cart-action="${action}"]`,
    );
    if (again !== null && !again.disabled) again.focus();
    else ui.cartHeading.focus();
  }
}

ui.cartLines.addEventListener('click', (event) => {
  const button = (event.target as Element).closest<HTMLButtonElement>('button[data-cart-action]');
  if (button === null || state.cartLocked) return;
  const id = Number(button.dataset.cartItemId);
  const quantity = state.cart.get(id);
  if (quantity === undefined) return;
  const name = state.catalog.get(id)?.name ?? `Item ${id}`;
  const action = button.dataset.cartAction;
  if (action === 'increase') state.cart.set(id, Math.min(quantity + 1, MAX_QUANTITY));
  else if (action === 'decrease' && quantity > 1) state.cart.set(id, quantity - 1);
  else if (action === 'decrease' || action === 'remove') state.cart.delete(id);
  const now = state.cart.get(id);
  say(now === undefined ? `${name} removed from the cart.` : `${now} ${name} in the cart.`);
  render();
});

function render(): void {
  renderCart();
  for (const add of ui.catalog.querySelectorAll<HTMLButtonElement>('button[data-item-id]')) {
    add.disabled = state.cartLocked;
  }
  ui.buy.disabled = state.cart.size === 0 || state.checkoutInFlight;
}

// ---- order ---------------------------------------------------------------

function setLatency(target: HTMLElement, ms: number): void {
  target.textContent = `${ms} ms`;
  target.dataset.ms = String(ms);
}

function setOrderStatus(status: string, reason = ''): void {
  ui.orderStatus.textContent = status;
  ui.orderStatus.dataset.status = status;
  ui.orderReason.textContent = reason;
}

function renderTraceLink(): void {
  const { jaegerUrl, traceId } = state;
  if (jaegerUrl !== null && traceId !== null) {
    ui.traceLink.href = `${jaegerUrl}/trace/${traceId}`;
    ui.traceLink.hidden = false;
  } else {
    ui.traceLink.removeAttribute('href');
    ui.traceLink.hidden = true;
  }
}

function resetOrder(): void {
  ui.order.hidden = true;
  for (const field of [ui.orderId, ui.orderTotal, ui.latencyAccepted, ui.latencyFinal, ui.traceId]) {
    field.textContent = '';
    delete field.dataset.ms;
  }
  setOrderStatus('pending');
  state.traceId = null;
  renderTraceLink();
}

async function buy(): Promise<void> {
  const lines = cartLines();
  if (lines.length === 0 || state.checkoutInFlight) return;
  const clicked = performance.now();
  const elapsed = () => Math.round(performance.now() - clicked);
  const units = lines.reduce((sum, line) => sum + line.quantity, 0);

  state.checkoutInFlight = true;
  state.cartLocked = true;
  clearError();
  resetOrder();
  say('Placing the order…');
  render();

  const attributes = {
    'storefront.cart.lines': lines.length,
    'storefront.cart.units': units,
    'storefront.cart.total_amount': cartTotal(),
    'session.id': sessionId,
  };
  try {
    await inClickSpan(attributes, async (span) => {
      let accepted;
      try {
        accepted = await postCheckout(lines);
      } catch (error) {
        if (error instanceof ApiError) {
          span.setAttributes({ 'error.type': error.code, 'http.response.status_code': error.status });
        }
        throw error;
      }
      const acceptedMs = elapsed();
      span.setAttributes({
        'storefront.order.id': accepted.orderId,
        'storefront.order.total_amount': accepted.totalAmount,
        'storefront.latency.accepted_ms': acceptedMs,
      });
      span.addEvent('order accepted');

      // The order is placed: the cart starts afresh while stock-service works.
      state.cart.clear();
      state.cartLocked = false;
      state.traceId = accepted.traceId;
      ui.orderId.textContent = accepted.orderId;
      ui.orderTotal.textContent = formatCents(accepted.totalAmount);
      setLatency(ui.latencyAccepted, acceptedMs);
      ui.traceId.textContent = accepted.traceId;
      renderTraceLink();
      ui.order.hidden = false;
      say(`Order accepted in ${acceptedMs} ms; waiting for stock-service…`);
      render();

      const { outcome, polls } = await pollOutcome(accepted.orderId);
      const finalMs = elapsed();
      span.setAttributes({ 'storefront.order.polls': polls, 'storefront.latency.final_ms': finalMs });
      setLatency(ui.latencyFinal, finalMs);
      if (outcome === null) {
        const seconds = POLL_GIVE_UP_MS / 1000;
        setOrderStatus('unknown', `(no outcome after ${seconds} s)`);
        span.setAttribute('storefront.order.status', 'unknown');
        throw new Error(`stock-service has not recorded order ${accepted.orderId} after ${seconds} s.`);
      }
      span.setAttribute('storefront.order.status', outcome.status);
      if (outcome.reason !== null) span.setAttribute('storefront.order.reason', outcome.reason);
      span.addEvent(`order ${outcome.status}`);
      setOrderStatus(outcome.status, outcome.reason === null ? '' : `(${outcome.reason})`);
      say(
        outcome.status === 'applied'
          ? `Order applied after ${finalMs} ms.`
          : outcome.status === 'duplicate'
            ? `Order applied once, as order ${outcome.duplicateOf ?? '?'} (a retry got this id).`
            : `Order rejected after ${finalMs} ms${outcome.reason === null ? '' : `: ${outcome.reason}`}.`,
      );
    });
  } catch (error) {
    if (ui.order.hidden) {
      showError(`Checkout failed: ${describe(error)}`);
    } else {
      // Accepted, but no outcome seen (a poll failed or gave up): not "pending" any more.
      if (ui.orderStatus.dataset.status === 'pending') setOrderStatus('unknown');
      showError(`The order was accepted, but its outcome is unknown: ${describe(error)}`);
    }
    say('');
  } finally {
    state.checkoutInFlight = false;
    state.cartLocked = false;
    render();
  }
}

ui.buy.addEventListener('click', () => void buy());

// ---- start ---------------------------------------------------------------

render();
void loadCatalog();
fetchConfig()
  .then((config) => {
    state.jaegerUrl = config.jaegerUrl;
    renderTraceLink();
  })
  .catch(() => {
    // Without it the trace id is still shown; only the link is missing.
  });

// Spans of the page load (document load, catalog) go out without waiting.
window.addEventListener('load', () => setTimeout(() => void flush(), 1000));
