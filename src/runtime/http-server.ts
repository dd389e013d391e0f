/** The manager's operational endpoints: /healthz, /readyz, /metrics. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** undefined when fine, else why not (shown in the 5xx body). */
export type Probe = () => string | undefined;

export interface OpsServerOptions {
  host?: string;
  /** 0 picks a free port. */
  port: number;
  registry: Registry;
  healthy: Probe;
  ready: Probe;
}

export class OpsServer {
  #server: Server;
  #options: OpsServerOptions;

  constructor(options: OpsServerOptions) {
    this.#options = options;
    this.#server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const probe = (check: Probe, failCode: number) => {
        const problem = check();
        res.writeHead(problem ? failCode : 200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(problem ? `${problem}\n` : 'ok\n');
      };
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
      } else if (path === '/healthz' || path === '/livez') {
        probe(options.healthy, 500);
      } else if (path === '/readyz') {
        probe(options.ready, 503);
      } else if (path === '/metrics') {
        options.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(text),
          (error: unknown) => res.writeHead(500).end(`metrics failed: ${String(error)}\n`),
        );
      } else {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      }
    });
  }

  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#options.port, this.#options.host ?? '0.0.0.0', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    return this.#server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    if (!this.#server.listening) return;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }
}
