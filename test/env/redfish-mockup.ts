// MOCKUP SERVER (test data serving, our own code): answers GET from one of the real vendors' Redfish
// trees in ../shared/redfish-mockups/trees/<tree> (Redfish-Mockup-Server short form: <path>/index.json)
// and keeps the effects of PATCH and POST in memory: a ComputerSystem.Reset changes PowerState (a
// restart goes Off, then On again, so a simulated machine sees the cycle), a Boot override PATCH is
// stored and read back. Basic auth always; a SessionService only when asked (otherwise a login POST
// answers 405, as on BMCs that advertise sessions but do not serve them). Per-tree quirks are the
// behaviour the vendor is known for and the tree shows (see QUIRKS); nothing else is invented, and a
// link whose target the tree lacks answers 404.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the trees are: METALBOX_REDFISH_TREES, else ../shared/redfish-mockups/trees beside the checkout. */
export function redfishTreesDir(): string {
  const dir =
    process.env.METALBOX_REDFISH_TREES ??
    fileURLToPath(new URL('../../../shared/redfish-mockups/trees/', import.meta.url));
  if (!existsSync(dir)) {
    throw new Error(`Redfish trees not found at ${dir} (set METALBOX_REDFISH_TREES to the trees folder)`);
  }
  return dir;
}

/** The eleven trees, by folder name. */
export const REDFISH_TREES = [
  'dell-idrac-r6515',
  'dell-idrac-r820',
  'dmtf-bladed',
  'dmtf-localstorage',
  'dmtf-rackmount1',
  'dmtf-smartnic',
  'dmtf-tower',
  'hpe-ilo5-dl180',
  'lenovo-xcc',
  'nvidia-gb300-openbmc',
  'supermicro-x12',
] as const;
export type RedfishTree = (typeof REDFISH_TREES)[number];

export interface MockupQuirks {
  /** The BMC rejects any PATCH carrying BootSourceOverrideMode (iLO 5: the mode is a BIOS setting). */
  bootModeReadOnly?: boolean;
  /** A Boot PATCH without BootSourceOverrideMode puts the mode back to this (Supermicro's firmware default). */
  bootModeWhenOmitted?: 'UEFI' | 'Legacy';
  /** A mode change is a BIOS configuration job (iDRAC): counted in `biosJobs`. */
  bootModeIsBiosJob?: boolean;
}

/** What each vendor's BMC is known to do that a read-only tree cannot show by itself. */
export const QUIRKS: Partial<Record<RedfishTree, MockupQuirks>> = {
  'hpe-ilo5-dl180': { bootModeReadOnly: true },
  'dell-idrac-r6515': { bootModeIsBiosJob: true },
  'dell-idrac-r820': { bootModeIsBiosJob: true },
  'supermicro-x12': { bootModeWhenOmitted: 'Legacy' },
};

export interface MockupOptions {
  tree: RedfishTree;
  /** Serve SessionService login/logout (default false: login answers 405). */
  sessions?: boolean;
  /** Store BootSourceOverrideEnabled "Once" as this instead (a BMC that ignores Once, like sushy's libvirt driver). */
  onceReadsBackAs?: 'Continuous';
  /** How long a restart keeps the System Off, and a graceful shutdown takes (default 600 ms). */
  transitionMs?: number;
  /** Override the tree's quirks (default QUIRKS[tree]). */
  quirks?: MockupQuirks;
}

export interface MockupRequest {
  method: string;
  path: string;
  auth: 'basic' | 'token' | 'none';
  body?: unknown;
}

export interface RedfishMockup {
  tree: RedfishTree;
  /** http://127.0.0.1:<port> */
  url: string;
  host: string;
  port: number;
  username: string;
  password: string;
  /** Paths of the Systems the tree lists (as written in the tree, trailing slash removed). */
  systems: string[];
  requests: MockupRequest[];
  /** BIOS jobs queued by boot-mode changes, per System path (bootModeIsBiosJob trees). */
  biosJobs: Map<string, number>;
  /** The resource as served now (tree JSON with in-memory changes), or undefined when absent. */
  resource(path: string): Record<string, unknown> | undefined;
  /** The tree's original JSON of a resource (never changed by requests). */
  original(path: string): Record<string, unknown> | undefined;
  /** Sets a System's PowerState directly (a person at the power button). */
  setPower(systemPath: string, state: 'On' | 'Off'): void;
  liveSessions(): number;
  close(): Promise<void>;
}

const norm = (path: string) => {
  const p = decodeURIComponent(path.split('?')[0]!).replace(/\/+$/, '');
  return p === '' ? '/' : p;
};

function redfishError(res: ServerResponse, status: number, messageId: string, message: string): void {
  const body = JSON.stringify({
    error: {
      code: `Base.1.8.${messageId}`,
      message,
      '@Message.ExtendedInfo': [{ MessageId: `Base.1.8.${messageId}`, Message: message }],
    },
  });
  res.writeHead(status, { 'content-type': 'application/json' }).end(body);
}

const STANDARD_RESETS = ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'Nmi'];

export async function startRedfishMockup(opts: MockupOptions): Promise<RedfishMockup> {
  const root = join(redfishTreesDir(), opts.tree);
  const quirks = opts.quirks ?? QUIRKS[opts.tree] ?? {};
  const transitionMs = opts.transitionMs ?? 600;
  const username = 'admin';
  const password = randomBytes(9).toString('base64url');
  const requests: MockupRequest[] = [];
  const biosJobs = new Map<string, number>();
  const sessions = new Map<string, string>(); // token -> session path
  const timers = new Set<NodeJS.Timeout>();
  const live = new Map<string, Record<string, unknown>>();

  const fileOf = (path: string) => {
    const rel = norm(path).replace(/^\/redfish\/v1/, '');
    if (rel.includes('..')) return undefined;
    return join(root, rel, 'index.json');
  };
  const original = (path: string): Record<string, unknown> | undefined => {
    const file = fileOf(path);
    if (!file || !existsSync(file)) return undefined;
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  };
  const resource = (path: string): Record<string, unknown> | undefined => {
    const key = norm(path);
    let r = live.get(key);
    if (!r) {
      r = original(key);
      if (r) live.set(key, r);
    }
    return r;
  };

  const serviceRoot = original('/redfish/v1');
  if (!serviceRoot) throw new Error(`tree ${opts.tree} has no service root at ${root}/index.json`);
  const sessionsPath = norm(
    (serviceRoot.Links as { Sessions?: { '@odata.id'?: string } } | undefined)?.Sessions?.['@odata.id'] ??
      '/redfish/v1/SessionService/Sessions',
  );
  const systemsPath = norm(
    (serviceRoot.Systems as { '@odata.id'?: string } | undefined)?.['@odata.id'] ?? '/redfish/v1/Systems',
  );
  const systems = ((original(systemsPath)?.Members as { '@odata.id': string }[] | undefined) ?? []).map((m) =>
    norm(m['@odata.id']),
  );

  // Reset targets → System path.
  const resetTargets = new Map<string, string>();
  for (const s of systems) {
    const target = (original(s)?.Actions as Record<string, { target?: string }> | undefined)?.[
      '#ComputerSystem.Reset'
    ]?.target;
    resetTargets.set(norm(target ?? `${s}/Actions/ComputerSystem.Reset`), s);
  }

  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  const setPower = (systemPath: string, state: 'On' | 'Off') => {
    const sys = resource(systemPath);
    if (sys) sys.PowerState = state;
  };

  const allowedResets = (systemPath: string): string[] => {
    const action = (resource(systemPath)?.Actions as Record<string, Record<string, unknown>> | undefined)?.[
      '#ComputerSystem.Reset'
    ];
    const listed = action?.['ResetType@Redfish.AllowableValues'] as string[] | undefined;
    if (listed) return listed;
    const info = action?.['@Redfish.ActionInfo'];
    if (typeof info === 'string') {
      const params = resource(info)?.Parameters as { Name: string; AllowableValues?: string[] }[] | undefined;
      const values = params?.find((p) => p.Name === 'ResetType')?.AllowableValues;
      if (values) return values;
    }
    return STANDARD_RESETS;
  };

  const reset = (systemPath: string, type: string) => {
    const sys = resource(systemPath)!;
    const on = sys.PowerState === 'On';
    switch (type) {
      case 'On':
      case 'ForceOn':
        setPower(systemPath, 'On');
        break;
      case 'ForceOff':
        setPower(systemPath, 'Off');
        break;
      case 'GracefulShutdown':
      case 'PushPowerButton':
        if (on) later(transitionMs, () => setPower(systemPath, 'Off'));
        else if (type === 'PushPowerButton') setPower(systemPath, 'On');
        break;
      case 'ForceRestart':
      case 'GracefulRestart':
      case 'PowerCycle':
        setPower(systemPath, 'Off');
        later(transitionMs, () => setPower(systemPath, 'On'));
        break;
      default:
        break; // Nmi and the like: no power effect
    }
  };

  /** Validates and applies a Boot PATCH; returns an error [status, id, message] or undefined. */
  const patchBoot = (
    systemPath: string,
    patch: Record<string, unknown>,
  ): [number, string, string] | undefined => {
    const sys = resource(systemPath)!;
    const boot = sys.Boot as Record<string, unknown> | undefined;
    if (!boot) return [400, 'PropertyUnknown', 'The property Boot is not in the list of valid properties'];
    for (const key of Object.keys(patch)) {
      if (!['BootSourceOverrideEnabled', 'BootSourceOverrideTarget', 'BootSourceOverrideMode'].includes(key))
        return [400, 'PropertyNotWritable', `The property ${key} is a read only property`];
    }
    const mode = patch.BootSourceOverrideMode;
    if (mode !== undefined) {
      if (!('BootSourceOverrideMode' in boot))
        return [
          400,
          'PropertyUnknown',
          'The property BootSourceOverrideMode is not in the list of valid properties',
        ];
      if (quirks.bootModeReadOnly)
        return [400, 'PropertyNotWritable', 'The property BootSourceOverrideMode is a read only property'];
      const modes = (boot['BootSourceOverrideMode@Redfish.AllowableValues'] as string[] | undefined) ?? [
        'UEFI',
        'Legacy',
      ];
      if (typeof mode !== 'string' || !modes.includes(mode))
        return [
          400,
          'PropertyValueNotInList',
          `The value ${String(mode)} for BootSourceOverrideMode is not in the list`,
        ];
    }
    const target = patch.BootSourceOverrideTarget;
    if (target !== undefined) {
      const targets = boot['BootSourceOverrideTarget@Redfish.AllowableValues'] as string[] | undefined;
      if (typeof target !== 'string' || (targets && !targets.includes(target)))
        return [
          400,
          'PropertyValueNotInList',
          `The value ${String(target)} for BootSourceOverrideTarget is not in the list`,
        ];
    }
    const enabled = patch.BootSourceOverrideEnabled;
    if (enabled !== undefined) {
      const allowed = (boot['BootSourceOverrideEnabled@Redfish.AllowableValues'] as string[] | undefined) ?? [
        'Once',
        'Continuous',
        'Disabled',
      ];
      if (typeof enabled !== 'string' || !allowed.includes(enabled))
        return [
          400,
          'PropertyValueNotInList',
          `The value ${String(enabled)} for BootSourceOverrideEnabled is not in the list`,
        ];
    }
    if (target !== undefined) boot.BootSourceOverrideTarget = target;
    if (enabled !== undefined)
      boot.BootSourceOverrideEnabled =
        enabled === 'Once' && opts.onceReadsBackAs ? opts.onceReadsBackAs : enabled;
    if (mode !== undefined) {
      if (mode !== boot.BootSourceOverrideMode && quirks.bootModeIsBiosJob)
        biosJobs.set(systemPath, (biosJobs.get(systemPath) ?? 0) + 1);
      boot.BootSourceOverrideMode = mode;
    } else if (
      quirks.bootModeWhenOmitted &&
      'BootSourceOverrideMode' in boot &&
      (target !== undefined || enabled !== undefined)
    ) {
      boot.BootSourceOverrideMode = quirks.bootModeWhenOmitted;
    }
    return undefined;
  };

  const authOf = (req: IncomingMessage): MockupRequest['auth'] | 'bad' => {
    const token = req.headers['x-auth-token'];
    if (typeof token === 'string') return sessions.has(token) ? 'token' : 'bad';
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (basic) {
      return Buffer.from(basic, 'base64').toString('utf8') === `${username}:${password}` ? 'basic' : 'bad';
    }
    return 'none';
  };

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string) => {
    const method = req.method ?? 'GET';
    const path = norm(req.url ?? '/');
    let body: unknown;
    if (raw !== '') {
      try {
        body = JSON.parse(raw);
      } catch {
        return redfishError(res, 400, 'MalformedJSON', 'The request body submitted was malformed JSON');
      }
    }
    const auth = authOf(req);
    requests.push({
      method,
      path,
      auth: auth === 'bad' ? 'none' : auth,
      ...(body !== undefined ? { body } : {}),
    });
    const json = (status: number, data: unknown, headers: Record<string, string> = {}) =>
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(data));

    const anonymous = method === 'GET' && (path === '/redfish/v1' || path === '/redfish');
    if (method === 'POST' && path === sessionsPath) {
      if (!opts.sessions)
        return redfishError(res, 405, 'OperationNotAllowed', 'The SessionService is not served');
      const b = body as { UserName?: string; Password?: string } | undefined;
      if (b?.UserName !== username || b?.Password !== password)
        return redfishError(res, 401, 'NoValidSession', 'Invalid username or password');
      const token = randomBytes(16).toString('hex');
      const id = randomBytes(4).toString('hex');
      const location = `${sessionsPath}/${id}`;
      sessions.set(token, location);
      return json(
        201,
        { '@odata.id': location, Id: id, UserName: username },
        { 'x-auth-token': token, location },
      );
    }
    if (!anonymous) {
      if (auth === 'none' || auth === 'bad')
        return redfishError(
          res,
          401,
          'NoValidSession',
          'There is no valid session established with the implementation',
        );
    }
    if (method === 'DELETE' && path.startsWith(`${sessionsPath}/`)) {
      for (const [token, location] of sessions) if (location === path) sessions.delete(token);
      return res.writeHead(204).end();
    }
    if (method === 'GET') {
      if (path === '/redfish') return json(200, { v1: '/redfish/v1/' });
      const r = resource(path);
      if (!r)
        return redfishError(
          res,
          404,
          'ResourceMissingAtURI',
          `The resource at the URI ${path} was not found`,
        );
      return json(200, r);
    }
    if (method === 'POST') {
      const system = resetTargets.get(path);
      if (!system)
        return redfishError(res, 405, 'ActionNotSupported', `The action at ${path} is not supported`);
      const type = (body as { ResetType?: unknown } | undefined)?.ResetType;
      if (typeof type !== 'string' || !allowedResets(system).includes(type))
        return redfishError(
          res,
          400,
          'ActionParameterNotSupported',
          `The parameter ResetType=${String(type)} is not supported`,
        );
      reset(system, type);
      return res.writeHead(204).end();
    }
    if (method === 'PATCH') {
      if (!systems.includes(path))
        return redfishError(res, 405, 'OperationNotAllowed', `PATCH ${path} is not allowed`);
      const b = body as { Boot?: Record<string, unknown> } | undefined;
      if (!b || typeof b !== 'object' || Object.keys(b).some((k) => k !== 'Boot') || !b.Boot)
        return redfishError(res, 400, 'PropertyNotWritable', 'Only Boot is writable on this System');
      const failure = patchBoot(path, b.Boot);
      if (failure) return redfishError(res, failure[0], failure[1], failure[2]);
      return res.writeHead(204).end();
    }
    return redfishError(res, 405, 'OperationNotAllowed', `${method} is not allowed`);
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        handle(req, res, Buffer.concat(chunks).toString('utf8'));
      } catch (error) {
        redfishError(res, 500, 'InternalError', (error as Error).message);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    tree: opts.tree,
    url: `http://127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    username,
    password,
    systems,
    requests,
    biosJobs,
    resource: (path) => resource(path),
    original,
    setPower,
    liveSessions: () => sessions.size,
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
