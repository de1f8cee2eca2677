/**
 * The `render` that docs/scaling-out.md leaves to the reader: it tells the test process that it
 * started and holds until the test releases it, so the test can take Redis away mid-job.
 *
 * @module
 */
const pending: ((result: unknown) => void)[] = [];

process.on('message', (message: { release?: boolean; result?: unknown }) => {
  if (message.release === true) for (const resolve of pending.splice(0)) resolve(message.result);
});

/** Starts "rendering" `input`; resolves with what the test releases it with. */
export function render(input: unknown): Promise<unknown> {
  process.send?.({ rendering: input });
  return new Promise((resolve) => pending.push(resolve));
}
