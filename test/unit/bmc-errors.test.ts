import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BmcAuthError,
  BmcNotFoundError,
  BmcUnreachableError,
  CircuitOpenError,
} from '../../src/bmc/errors.ts';
import { redact, snippet } from '../../src/bmc/redact.ts';
import { parseRetryAfter } from '../../src/bmc/redfish/client.ts';

test('an authentication error names the BMC and the user, and says what to check', () => {
  const error = new BmcAuthError('redfish://10.0.10.11/redfish/v1/Systems/1', 'HTTP 401', {
    username: 'admin',
  });
  assert.equal(error.name, 'BmcAuthError');
  assert.equal(error.code, 'BmcAuth');
  assert.match(
    error.message,
    /^BMC redfish:\/\/10\.0\.10\.11\/redfish\/v1\/Systems\/1 rejected the credentials as user "admin": HTTP 401/,
  );
  assert.match(error.message, /check the username and password/);
});

test('the circuit breaker only counts errors that say something about the BMC', () => {
  assert.equal(new BmcUnreachableError('ipmi://h', 'x').countsAgainstBmc, true);
  assert.equal(new BmcNotFoundError('ipmi://h', 'x').countsAgainstBmc, false);
  assert.equal(new CircuitOpenError('ipmi://h', 5, 30_000, 'boom').countsAgainstBmc, false);
  assert.match(
    new CircuitOpenError('ipmi://h', 5, 29_500).message,
    /failed 5 operations in a row; not trying again for 30 s/,
  );
});

test('secrets are redacted from BMC answers in every encoding they might be echoed in', () => {
  const password = 'p@ss"w0rd/x';
  const echoed = `login failed for {"Password":"${JSON.stringify(password).slice(1, -1)}"} or ${encodeURIComponent(password)} or ${password}`;
  const out = redact(echoed, [password]);
  assert.ok(!out.includes(password));
  assert.ok(!out.includes(encodeURIComponent(password)));
  assert.ok(!out.includes('w0rd'));
  assert.equal(redact('Authorization: Basic YWRtaW46c2VjcmV0cGFzcw==', []), 'Authorization: Basic ***');
});

test('error snippets are single-line and bounded', () => {
  const s = snippet(`line one\n\n${'x'.repeat(500)}`, [], 40);
  assert.ok(!s.includes('\n'));
  assert.ok(s.length <= 41);
});

test('Retry-After is read as seconds or as an HTTP date', () => {
  assert.equal(parseRetryAfter('3'), 3000);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter('soon'), undefined);
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now), 5000);
});
