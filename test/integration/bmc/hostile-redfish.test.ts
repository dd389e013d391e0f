// Malformed and hostile answers from the FAKE Redfish service (fake-hostile-redfish.ts): each must end in a
// typed error within the configured timeout, with no crash and no unhandled rejection.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, test } from 'node:test';
import { staticCredentials } from '../../../src/bmc/credentials.ts';
import {
  BmcNotFoundError,
  BmcProtocolError,
  BmcTimeoutError,
  BmcUnreachableError,
} from '../../../src/bmc/errors.ts';
import { createBmcFactory } from '../../../src/bmc/factory.ts';
import { freePort } from '../../env/ports.ts';
import { type FakeHostileRedfish, startFakeHostileRedfish } from './fake-hostile-redfish.ts';
import { watchUnhandledRejections } from './helpers.ts';

const unhandled = watchUnhandledRejections();
const password = 'hostile-Secret-77';
const REQUEST_TIMEOUT_MS = 800;
const RETRIES = 2;
let fake: FakeHostileRedfish;
// A high failure threshold: these tests look at single errors, not the circuit breaker.
const factory = createBmcFactory({
  protection: { failureThreshold: 1000 },
  redfish: { requestTimeoutMs: REQUEST_TIMEOUT_MS, retries: RETRIES, retryBaseMs: 20 },
});

before(async () => {
  fake = await startFakeHostileRedfish({ username: 'admin', password });
});
beforeEach(() => fake.clearFaults());
after(async () => {
  await fake?.stop();
});

function driver(path?: string) {
  return factory.create({
    address: `redfish+http://127.0.0.1:${fake.port}${path ?? fake.systemPath}`,
    credentials: staticCredentials('admin', password),
  });
}

/** Runs fn, returning its error and how long it took. */
async function failure(fn: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  try {
    await fn();
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
  assert.fail('expected a failure');
}

test('fake BMC: links off the BMC’s own origin are refused, and nothing reaches the host they name', async (t) => {
  const seen: string[] = [];
  const other = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => other.close(() => resolve())));
  const elsewhere = `127.0.0.1:${(other.address() as AddressInfo).port}`;
  for (const link of [
    `@${elsewhere}/redfish/v1/Systems/1`,
    `//${elsewhere}/redfish/v1/Systems/1`,
    `http://${elsewhere}/redfish/v1/Systems/1`,
    'redfish/v1/Systems/1',
    '/\\evil/redfish/v1/Systems/1',
  ]) {
    fake.fault('/redfish/v1/Systems', {
      kind: 'status',
      status: 200,
      body: JSON.stringify({ Members: [{ '@odata.id': link }], 'Members@odata.count': 1 }),
    });
    const d = driver('');
    const { error } = await failure(() => d.powerState());
    assert.ok(error instanceof BmcProtocolError, `${link}: ${String(error)}`);
    assert.match(
      error.message,
      /is not an absolute path on the BMC \(http:\/\/127\.0\.0\.1:\d+\); not followed/,
    );
    assert.ok(!error.message.includes(password));
    await d.close();
  }
  assert.deepEqual(seen, [], 'no request went to the host a link named');
});

test('fake BMC: truncated JSON is a protocol error', async () => {
  fake.fault(fake.systemPath, { kind: 'truncatedJson' });
  const d = driver();
  const { error } = await failure(() => d.powerState());
  assert.ok(error instanceof BmcProtocolError, String(error));
  assert.match(error.message, /GET \/redfish\/v1\/Systems\/1: HTTP 200 with truncated or malformed JSON/);
  await d.close();
});

test('fake BMC: an HTML error page is a protocol error quoting its title, after retries', async () => {
  fake.fault(fake.systemPath, { kind: 'html', status: 502 });
  const d = driver();
  const before = fake.requests.length;
  const { error } = await failure(() => d.powerState());
  assert.ok(error instanceof BmcProtocolError, String(error));
  assert.match(error.message, /HTTP 502: an HTML page \("502 Bad Gateway"\) instead of JSON/);
  assert.equal(fake.requests.slice(before).filter((r) => r.path === fake.systemPath).length, RETRIES + 1);
  await d.close();
});

test('fake BMC: an HTML page with status 200 is not mistaken for JSON', async () => {
  fake.fault(fake.systemPath, { kind: 'html', status: 200 });
  const d = driver();
  const { error } = await failure(() => d.powerState());
  assert.ok(error instanceof BmcProtocolError);
  assert.match(error.message, /HTTP 200 with an HTML page/);
  await d.close();
});

test('fake BMC: a 500 storm gives up after the configured retries with the BMC’s message', async () => {
  fake.fault(fake.systemPath, { kind: 'status', status: 500 });
  const d = driver();
  const before = fake.requests.length;
  const { error, ms } = await failure(() => d.powerState());
  assert.ok(error instanceof BmcProtocolError);
  assert.equal(error.status, 500);
  assert.match(error.message, /HTTP 500: storm/);
  assert.equal(fake.requests.slice(before).filter((r) => r.path === fake.systemPath).length, RETRIES + 1);
  assert.ok(ms < 5000, `gave up in ${ms} ms`);
  await d.close();
});

test('fake BMC: 503 with Retry-After is waited out, then the request succeeds', async () => {
  fake.fault(fake.systemPath, { kind: 'status', status: 503, retryAfter: '1' }, 1);
  const d = driver();
  const started = Date.now();
  assert.equal(await d.powerState(), 'off');
  assert.ok(Date.now() - started >= 900, 'Retry-After: 1 was honoured');
  await d.close();
});

test('fake BMC: 429 with a Retry-After beyond the limit fails at once instead of hanging', async () => {
  fake.fault(fake.systemPath, { kind: 'status', status: 429, retryAfter: '3600' });
  const d = driver();
  const { error, ms } = await failure(() => d.powerState());
  assert.ok(error instanceof BmcProtocolError);
  assert.equal(error.status, 429);
  assert.ok(ms < 2000, `failed in ${ms} ms`);
  await d.close();
});

test('fake BMC: a response that never ends is a timeout within the request timeout', async () => {
  fake.fault(fake.systemPath, { kind: 'neverEnding' });
  const d = driver();
  const { error, ms } = await failure(() => d.powerState());
  assert.ok(error instanceof BmcTimeoutError, String(error));
  assert.match(
    error.message,
    new RegExp(`did not answer GET /redfish/v1/Systems/1 within ${REQUEST_TIMEOUT_MS} ms`),
  );
  assert.ok(ms < REQUEST_TIMEOUT_MS + 1500, `timed out after ${ms} ms`);
  await d.close();
});

test('fake BMC: a request that is never answered is a timeout within the request timeout', async () => {
  fake.fault(fake.systemPath, { kind: 'noHeaders' });
  const d = driver();
  const { error, ms } = await failure(() => d.powerState());
  assert.ok(error instanceof BmcTimeoutError, String(error));
  assert.ok(ms < REQUEST_TIMEOUT_MS + 1500, `timed out after ${ms} ms`);
  await d.close();
});

test('fake BMC: an endless body is cut off at the size limit', async () => {
  fake.fault(fake.systemPath, { kind: 'hugeBody', bytes: 64 * 1024 * 1024 });
  const d = driver();
  const { error } = await failure(() => d.powerState());
  assert.ok(error instanceof BmcProtocolError, String(error));
  assert.match(error.message, /response body larger than 8388608 bytes/);
  await d.close();
});

test('fake BMC: JSON of the wrong shape is a protocol error naming the field', async () => {
  fake.fault('/redfish/v1/Systems', { kind: 'wrongShape' });
  const d = driver('/');
  const { error } = await failure(() => d.powerState());
  assert.ok(error instanceof BmcProtocolError);
  assert.match(error.message, /GET \/redfish\/v1\/Systems: unexpected JSON shape at Members/);
  await d.close();
});

test('fake BMC: a System path that 404s is a not-found error listing the real System', async () => {
  const d = driver('/redfish/v1/Systems/missing');
  const { error, ms } = await failure(() => d.powerState());
  assert.ok(error instanceof BmcNotFoundError);
  assert.match(
    error.message,
    /System \/redfish\/v1\/Systems\/missing does not exist; Systems on this BMC: \/redfish\/v1\/Systems\/1/,
  );
  assert.ok(ms < 2000);
  await d.close();
});

test('fake BMC: a BMC that echoes the credentials back does not get them into the error', async () => {
  fake.fault(fake.systemPath, { kind: 'echoRequest', status: 400 });
  const d = driver();
  const { error } = await failure(() => d.powerState());
  assert.ok(error instanceof BmcProtocolError);
  assert.match(error.message, /rejected request from admin:\*\*\*/);
  assert.ok(!error.message.includes(password), error.message);
  assert.ok(!error.message.includes(Buffer.from(`admin:${password}`).toString('base64')));
  await d.close();
});

test('a port nobody listens on is an unreachable error after the retries', async () => {
  const port = await freePort();
  const d = factory.create({
    address: `redfish+http://127.0.0.1:${port}/redfish/v1/Systems/1`,
    credentials: staticCredentials('admin', password),
  });
  const { error, ms } = await failure(() => d.powerState());
  assert.ok(error instanceof BmcUnreachableError);
  assert.match(error.message, /ECONNREFUSED/);
  assert.ok(ms < 3000);
  await d.close();
});

test('none of the hostile answers left an unhandled rejection, and the fake still answers', async () => {
  const d = driver();
  assert.equal(await d.powerState(), 'off');
  await d.close();
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(unhandled(), []);
});
