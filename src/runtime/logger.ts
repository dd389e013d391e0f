/** The logging surface the runtime needs; a pino logger fits it. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** A log-safe description of an error: its class and message, never its properties (which may hold inputs). */
export function errorFields(error: unknown): { err: { type: string; message: string } } {
  if (error instanceof Error) return { err: { type: error.name, message: error.message } };
  return { err: { type: typeof error, message: String(error) } };
}

/** A logger that adds `fields` to every entry. */
export function withFields(logger: Logger, fields: object): Logger {
  return {
    debug: (obj, msg) => logger.debug({ ...fields, ...obj }, msg),
    info: (obj, msg) => logger.info({ ...fields, ...obj }, msg),
    warn: (obj, msg) => logger.warn({ ...fields, ...obj }, msg),
    error: (obj, msg) => logger.error({ ...fields, ...obj }, msg),
  };
}
