// A FAKE Redfish service for failures and features the real emulator (sushy-tools) cannot produce:
// truncated JSON, HTML error pages, 500 storms, Retry-After, responses that never end, a SessionService
// with expiring tokens, ETag/If-Match enforcement, and 202 task monitors. It is deliberately small: one
// System, answers built by hand. Anything sushy-tools can do is tested against sushy-tools instead.
import { randomBytes } from 'node:crypto';
import {
  createServer as createHttp,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { Socket } from 'node:net';

export type Fault =
  | { kind: 'truncatedJson' }
  | { kind: 'html'; status: number }
  | { kind: 'status'; status: number; retryAfter?: string; body?: string }
  | { kind: 'neverEnding' } // headers, a little JSON, then silence
  | { kind: 'noHeaders' } // accepts the request, never answers
  | { kind: 'hugeBody'; bytes: number }
  | { kind: 'wrongShape' }
  | { kind: 'echoRequest'; status: number }; // echoes the request's credentials back (a leaky BMC)

export interface FakeRequest {
  method: string;
  path: string;
  auth: 'basic' | 'token' | 'none';
  ifMatch?: string;
  body?: unknown;
}

export interface FakeRedfishOptions {
  username: string;
  password: string;
  /** Advertise and serve a SessionService. */
  sessions?: boolean;
  /** Require If-Match on PATCH (428 without), and check it against the System's ETag (412 on mismatch). */
  etags?: boolean;
  /** Reset answers 202 with a task monitor that stays running for this many polls, then ends in taskEnd. */
  asyncReset?: { polls: number; end: 'Completed' | 'Exception' };
  tls?: { cert: string; key: string };
  systemId?: string;
  allowableResetTypes?: string[];
}

export interface FakeHostileRedfish {
  url: string;
  port: number;
  systemPath: string;
  requests: FakeRequest[];
  /** Most requests the fake was serving at one moment. */
  maxConcurrent(): number;
  /** Faults by path, or by "METHOD path", applied to the next `times` requests (default: all). */
  fault(key: string, fault: Fault, times?: number): void;
  clearFaults(): void;
  /** Invalidates every session token, as a BMC reboot would. */
  expireSessions(): void;
  liveSessions(): number;
  state: { power: 'On' | 'Off'; boot: Record<string, string>; etag: number; resets: string[] };
  stop(): Promise<void>;
}

export async function startFakeHostileRedfish(options: FakeRedfishOptions): Promise<FakeHostileRedfish> {
  const systemId = options.systemId ?? '1';
  const systemPath = `/redfish/v1/Systems/${systemId}`;
  const sessions = new Map<string, string>(); // token -> session path
  const faults = new Map<string, { fault: Fault; times: number }>();
  const requests: FakeRequest[] = [];
  const sockets = new Set<Socket>();
  const state = {
    power: 'Off' as 'On' | 'Off',
    boot: {
      BootSourceOverrideEnabled: 'Disabled',
      BootSourceOverrideTarget: 'None',
      BootSourceOverrideMode: 'UEFI',
    },
    etag: 1,
    resets: [] as string[],
  };
  let inFlight = 0;
  let maxInFlight = 0;
  let taskPolls = 0;
  const basic = `Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}`;

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  };
  const redfishError = (res: ServerResponse, status: number, message: string) =>
    json(res, status, { error: { code: 'Base.1.0.GeneralError', message } });

  const system = () => ({
    '@odata.id': systemPath,
    Id: systemId,
    Name: 'fake',
    UUID: '00000000-0000-4000-8000-00000000f4ce',
    Manufacturer: 'FakeVendor',
    Model: 'Hostile 1',
    SerialNumber: 'FAKE-0001',
    PowerState: state.power,
    Boot: {
      ...state.boot,
      'BootSourceOverrideTarget@Redfish.AllowableValues': ['None', 'Pxe', 'Hdd'],
    },
    ProcessorSummary: { Count: 2, Model: 'Fake CPU' },
    MemorySummary: { TotalSystemMemoryGiB: 64 },
    EthernetInterfaces: { '@odata.id': `${systemPath}/EthernetInterfaces` },
    Actions: {
      '#ComputerSystem.Reset': {
        target: `${systemPath}/Actions/ComputerSystem.Reset`,
        'ResetType@Redfish.AllowableValues': options.allowableResetTypes ?? [
          'On',
          'ForceOff',
          'GracefulShutdown',
          'ForceRestart',
        ],
      },
    },
  });

  const applyFault = (req: IncomingMessage, res: ServerResponse, fault: Fault, body: string) => {
    switch (fault.kind) {
      case 'truncatedJson': {
        const text = JSON.stringify(system()).slice(0, 50);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(text);
        return;
      }
      case 'html':
        res.writeHead(fault.status, { 'content-type': 'text/html' });
        res.end('<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>');
        return;
      case 'status':
        res.writeHead(fault.status, {
          'content-type': 'application/json',
          ...(fault.retryAfter ? { 'retry-after': fault.retryAfter } : {}),
        });
        res.end(
          fault.body ?? JSON.stringify({ error: { code: 'Base.1.0.InternalError', message: 'storm' } }),
        );
        return;
      case 'neverEnding':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"@odata.id": "');
        return; // never ends
      case 'noHeaders':
        return; // never answers
      case 'hugeBody': {
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        let sent = 0;
        const pump = () => {
          while (sent < fault.bytes) {
            sent += chunk.length;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      case 'wrongShape':
        json(res, 200, { Members: 'not-a-list' });
        return;
      case 'echoRequest': {
        const basicAuth = /^Basic (.*)$/.exec(req.headers.authorization ?? '')?.[1];
        const decoded = basicAuth ? Buffer.from(basicAuth, 'base64').toString('utf8') : '';
        const message = `rejected request from ${decoded} with body ${body} and header ${req.headers.authorization ?? ''}`;
        res.writeHead(fault.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'Base.1.0.GeneralError', message } }));
        return;
      }
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse, body: string) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const authorization = req.headers.authorization;
    const token = req.headers['x-auth-token'];
    let parsed: unknown;
    try {
      parsed = body ? JSON.parse(body) : undefined;
    } catch {
      parsed = body;
    }
    requests.push({
      method,
      path,
      auth: typeof token === 'string' ? 'token' : authorization ? 'basic' : 'none',
      ...(typeof req.headers['if-match'] === 'string' ? { ifMatch: req.headers['if-match'] } : {}),
      ...(parsed !== undefined ? { body: parsed } : {}),
    });

    const faultKey = faults.has(`${method} ${path}`) ? `${method} ${path}` : path;
    const pending = faults.get(faultKey);
    if (pending) {
      if (--pending.times <= 0) faults.delete(faultKey);
      applyFault(req, res, pending.fault, body);
      return;
    }

    if (path === '/redfish/v1') {
      json(res, 200, {
        '@odata.id': '/redfish/v1/',
        RedfishVersion: '1.15.0',
        Systems: { '@odata.id': '/redfish/v1/Systems' },
        ...(options.sessions
          ? {
              SessionService: { '@odata.id': '/redfish/v1/SessionService' },
              Links: { Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } },
            }
          : {}),
      });
      return;
    }
    if (options.sessions && path === '/redfish/v1/SessionService/Sessions' && method === 'POST') {
      const creds = parsed as { UserName?: string; Password?: string } | undefined;
      if (creds?.UserName !== options.username || creds?.Password !== options.password) {
        redfishError(res, 401, 'Invalid credentials');
        return;
      }
      const newToken = randomBytes(16).toString('hex');
      const sessionPath = `/redfish/v1/SessionService/Sessions/${randomBytes(4).toString('hex')}`;
      sessions.set(newToken, sessionPath);
      json(
        res,
        201,
        { '@odata.id': sessionPath, UserName: options.username },
        {
          'x-auth-token': newToken,
          location: sessionPath,
        },
      );
      return;
    }

    const tokenOk = typeof token === 'string' && sessions.has(token);
    if (!tokenOk && authorization !== basic) {
      redfishError(res, 401, 'Authentication required');
      return;
    }
    if (method === 'DELETE' && path.startsWith('/redfish/v1/SessionService/Sessions/')) {
      for (const [t, p] of sessions) if (p === path) sessions.delete(t);
      res.writeHead(204).end();
      return;
    }
    if (path === '/redfish/v1/Systems') {
      json(res, 200, { Members: [{ '@odata.id': systemPath }], 'Members@odata.count': 1 });
      return;
    }
    if (path === systemPath && method === 'GET') {
      json(res, 200, system(), options.etags ? { etag: `W/"${state.etag}"` } : {});
      return;
    }
    if (path === systemPath && method === 'PATCH') {
      if (options.etags) {
        const ifMatch = req.headers['if-match'];
        if (!ifMatch) {
          redfishError(res, 428, 'If-Match required');
          return;
        }
        if (ifMatch !== `W/"${state.etag}"` && ifMatch !== '*') {
          redfishError(res, 412, 'ETag mismatch');
          return;
        }
      }
      const patch = (parsed as { Boot?: Record<string, string> } | undefined)?.Boot ?? {};
      Object.assign(state.boot, patch);
      state.etag++;
      res.writeHead(204).end();
      return;
    }
    if (path === `${systemPath}/EthernetInterfaces`) {
      json(res, 200, { Members: [{ '@odata.id': `${systemPath}/EthernetInterfaces/nic1` }] });
      return;
    }
    if (path === `${systemPath}/EthernetInterfaces/nic1`) {
      json(res, 200, { Id: 'nic1', MACAddress: 'AA:BB:CC:00:00:01', LinkStatus: 'LinkUp', SpeedMbps: 25000 });
      return;
    }
    if (path === `${systemPath}/Actions/ComputerSystem.Reset` && method === 'POST') {
      const type = (parsed as { ResetType?: string } | undefined)?.ResetType ?? '';
      state.resets.push(type);
      if (['On', 'ForceOn', 'ForceRestart', 'GracefulRestart', 'PowerCycle'].includes(type))
        state.power = 'On';
      if (['ForceOff', 'GracefulShutdown'].includes(type)) state.power = 'Off';
      if (options.asyncReset) {
        taskPolls = 0;
        res.writeHead(202, { location: '/redfish/v1/TaskService/TaskMonitors/1', 'content-length': 0 }).end();
        return;
      }
      res.writeHead(204).end();
      return;
    }
    if (path === '/redfish/v1/TaskService/TaskMonitors/1' && options.asyncReset) {
      taskPolls++;
      if (taskPolls <= options.asyncReset.polls) {
        json(res, 202, { TaskState: 'Running', PercentComplete: taskPolls * 10 }, { 'retry-after': '0' });
        return;
      }
      json(res, 200, {
        TaskState: options.asyncReset.end,
        TaskStatus: options.asyncReset.end === 'Completed' ? 'OK' : 'Critical',
        Messages:
          options.asyncReset.end === 'Completed' ? [] : [{ Message: 'Power supply refused the request' }],
      });
      return;
    }
    redfishError(res, 404, `${path} not found`);
  };

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    res.once('close', () => inFlight--);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
  };
  const server: Server = options.tls
    ? createHttps({ cert: options.tls.cert, key: options.tls.key }, listener)
    : createHttp(listener);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fake Redfish has no port');
  const port = address.port;
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    systemPath,
    requests,
    maxConcurrent: () => maxInFlight,
    fault(key, fault, times = Number.POSITIVE_INFINITY) {
      faults.set(key.replace(/\/+$/, '') || '/', { fault, times });
    },
    clearFaults: () => faults.clear(),
    expireSessions: () => sessions.clear(),
    liveSessions: () => sessions.size,
    state,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
