/**
 * An unbounded push-to-pull queue exposed as a single-consumer async iterable. Stores use it to turn
 * callback watches into the `AsyncIterable` the ResourceStore contract asks for.
 */
export class Channel<T> implements AsyncIterable<T> {
  #buffer: T[] = [];
  #waiting: ((r: IteratorResult<T>) => void) | undefined;
  #failWaiting: ((e: unknown) => void) | undefined;
  #error: unknown;
  #failed = false;
  #closed = false;
  #onClose: (() => void)[] = [];

  constructor(signal?: AbortSignal) {
    const abort = () => {
      this.#buffer = [];
      this.close();
    };
    if (signal?.aborted) abort();
    else signal?.addEventListener('abort', abort, { once: true });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs once when the channel closes, for whatever reason (end, failure, abort, consumer left). */
  onClose(fn: () => void): void {
    if (this.#closed) fn();
    else this.#onClose.push(fn);
  }

  push(value: T): void {
    if (this.#closed) return;
    const waiting = this.#waiting;
    if (waiting) {
      this.#clearWaiting();
      waiting({ value, done: false });
    } else {
      this.#buffer.push(value);
    }
  }

  /** Ends the stream with an error, delivered after what is already buffered. */
  fail(error: unknown): void {
    if (this.#closed) return;
    this.#failed = true;
    this.#error = error;
    const failWaiting = this.#failWaiting;
    this.#finish();
    if (failWaiting) failWaiting(error);
  }

  /** Ends the stream cleanly; buffered values are still delivered. Same as close(). */
  end(): void {
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    const waiting = this.#waiting;
    this.#finish();
    if (waiting) waiting({ value: undefined, done: true });
  }

  #finish(): void {
    this.#closed = true;
    this.#clearWaiting();
    const hooks = this.#onClose.splice(0);
    for (const fn of hooks) fn();
  }

  #clearWaiting(): void {
    this.#waiting = undefined;
    this.#failWaiting = undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.#buffer.length > 0)
          return Promise.resolve({ value: this.#buffer.shift() as T, done: false });
        if (this.#failed) {
          this.#failed = false;
          return Promise.reject(this.#error);
        }
        if (this.#closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          this.#waiting = resolve;
          this.#failWaiting = reject;
        });
      },
      return: () => {
        this.#buffer = [];
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
