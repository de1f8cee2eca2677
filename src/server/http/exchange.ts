/**
 * How an adapter hands the handler one request and takes its answer without a promise (internal, not
 * exported from `pollkit/server`).
 *
 * A held long poll lives for up to 30 s and a server keeps ten thousand of them, so the way back from
 * the handler to the adapter is a method call on an object the adapter made anyway, not a promise
 * chain: the handler calls {@link Exchange.respond} once. While a request is held, the handler puts
 * the held operation in {@link Exchange.held}; an adapter that watches the connection itself (the Node
 * adapters) aborts it when the client hangs up, one call and no `AbortSignal`. Other exchanges give a
 * signal that the held operation listens to itself.
 *
 * @module
 */
import type { Cors } from './cors.js';
import { withoutBody } from './responses.js';
import type { PollkitRequest, PollkitResponse } from './types.js';

/** What an adapter aborts when its client hangs up. */
export interface Abortable {
  abort(): boolean;
}

/** One request in flight between an adapter and the handler. */
export interface Exchange<Context = unknown> {
  /** The request as the handler reads it (often the exchange itself). */
  readonly request: PollkitRequest<Context>;
  /**
   * The signal that ends a held request when its client leaves, or `undefined` when the adapter
   * aborts {@link Exchange.held} itself.
   */
  readonly hangUpSignal: AbortSignal | undefined;
  /** True once the client has left. */
  readonly gone: boolean;
  /** The held operation while the request waits; set and cleared by the handler. */
  held: Abortable | undefined;
  /** Takes the handler's answer, exactly once. */
  respond(response: PollkitResponse): void;
}

/** The exchange behind `PollkitHandler.handle`: the answer resolves a promise. */
export class PromiseExchange<Context> implements Exchange<Context> {
  readonly request: PollkitRequest<Context>;
  readonly #resolve: (response: PollkitResponse) => void;
  held: Abortable | undefined = undefined;

  constructor(request: PollkitRequest<Context>, resolve: (response: PollkitResponse) => void) {
    this.request = request;
    this.#resolve = resolve;
  }

  get hangUpSignal(): AbortSignal {
    return this.request.signal;
  }

  get gone(): boolean {
    return this.request.signal.aborted;
  }

  respond(response: PollkitResponse): void {
    this.#resolve(response);
  }
}

/** What a route returns when a held poll answers through the exchange itself, later. */
export const ANSWERED_LATER: unique symbol = Symbol('pollkit.answeredLater');

/** A route's outcome: its answer, or {@link ANSWERED_LATER}. */
export type RouteOutcome = PollkitResponse | typeof ANSWERED_LATER;

/**
 * An exchange whose answers get the CORS headers and, for `HEAD`, lose their body, wherever they come
 * from (a route, a held poll, a failure). Made only for requests these apply to.
 */
export class DecoratedExchange<Context> implements Exchange<Context> {
  readonly #inner: Exchange<Context>;
  readonly #cors: Cors | undefined;
  readonly #head: boolean;

  constructor(inner: Exchange<Context>, cors: Cors | undefined) {
    this.#inner = inner;
    this.#cors = cors;
    this.#head = inner.request.method.toUpperCase() === 'HEAD';
  }

  get request(): PollkitRequest<Context> {
    return this.#inner.request;
  }

  get hangUpSignal(): AbortSignal | undefined {
    return this.#inner.hangUpSignal;
  }

  get gone(): boolean {
    return this.#inner.gone;
  }

  get held(): Abortable | undefined {
    return this.#inner.held;
  }

  set held(held: Abortable | undefined) {
    this.#inner.held = held;
  }

  respond(response: PollkitResponse): void {
    const answer = this.#head ? withoutBody(response) : response;
    this.#inner.respond(this.#cors === undefined ? answer : this.#cors.decorate(this.#inner.request, answer));
  }
}
