// Shared bits for the BMC integration tests: a logger whose lines a test can read back, and a guard that
// fails a test file if any promise was rejected without a handler.
import { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';

export interface CapturedLog {
  logger: Logger;
  lines(): Record<string, unknown>[];
  /** Every line's text, for asserting that a secret never appears. */
  text(): string;
}

export function captureLogger(level = 'debug'): CapturedLog {
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const logger = pino({ level }, stream);
  return {
    logger,
    lines: () => raw.map((line) => JSON.parse(line) as Record<string, unknown>),
    text: () => raw.join('\n'),
  };
}

/** Collects unhandled rejections from now on; call the returned function to read them. */
export function watchUnhandledRejections(): () => unknown[] {
  const seen: unknown[] = [];
  const listener = (reason: unknown) => seen.push(reason);
  process.on('unhandledRejection', listener);
  return () => seen;
}
