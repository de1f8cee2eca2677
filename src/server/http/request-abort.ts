/**
 * Lets an adapter hand the handler the controller behind a request's signal (internal, not exported
 * from `pollkit/server`). A held long poll then waits on that one signal, and a shutdown aborts it
 * directly, instead of the handler linking a second `AbortSignal` to it: with ten thousand requests
 * held, the second signal and its listener were about a tenth of each request's memory.
 *
 * An adapter that offers its controller must still write the handler's answer after such an abort
 * (only a client hang-up means nobody is listening) and must not offer it for requests whose stream
 * bodies watch the signal; the handler never aborts a stream's request signal.
 *
 * @module
 */
import type { PollkitRequest } from './types.js';

const CONTROLLER = Symbol('pollkit.requestController');

interface WithController {
  [CONTROLLER]?: AbortController;
}

/**
 * Marks `request` as one whose signal the handler may abort itself, through `controller`.
 *
 * @example
 * ```ts
 * const controller = new AbortController();
 * const request = { method: 'GET', url: '/pollkit/jobs', headers: {}, signal: controller.signal };
 * offerController(request, controller);
 * ```
 */
export function offerController(request: PollkitRequest<unknown>, controller: AbortController): void {
  (request as WithController)[CONTROLLER] = controller;
}

/**
 * The controller behind `request.signal` when the adapter offered it, else `undefined`.
 *
 * @example
 * ```ts
 * const controller = offeredController(request);
 * controller?.abort(new PollkitError('The server is shutting down', 'shutting-down'));
 * ```
 */
export function offeredController(request: PollkitRequest<unknown>): AbortController | undefined {
  const controller = (request as WithController)[CONTROLLER];
  return controller !== undefined && controller.signal === request.signal ? controller : undefined;
}
