// Adapter: src/bmc takes a pino Logger (it calls child() and logs bare strings); controller
// families get the runtime's Logger interface. This gives the BMC drivers what they call.
import type { Logger as PinoLogger } from 'pino';
import type { Logger } from '../../runtime/logger.ts';
import { withFields } from '../../runtime/logger.ts';

type Level = 'debug' | 'info' | 'warn' | 'error';

export function bmcLogger(logger: Logger): PinoLogger {
  const level =
    (name: Level) =>
    (first: unknown, msg?: string): void => {
      if (typeof first === 'string') logger[name]({}, first);
      else logger[name]((first ?? {}) as object, msg);
    };
  const adapter = {
    debug: level('debug'),
    info: level('info'),
    warn: level('warn'),
    error: level('error'),
    child: (fields: object) => bmcLogger(withFields(logger, fields)),
  };
  return adapter as unknown as PinoLogger;
}
