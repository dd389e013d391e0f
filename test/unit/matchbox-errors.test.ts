// Classification of grpc-js failure texts (the texts are the ones observed against the real
// Matchbox in test/integration/matchbox/client-errors.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classify, toMatchboxError } from '../../src/matchbox/errors.ts';

const note = ' (2026-11-24T04:16:24.275Z). Resolution note: ';

test('TLS and transport failure texts map to their cause', () => {
  const cases: [number, string, string][] = [
    [
      14,
      `No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:35689. Resolution note: `,
      'refused',
    ],
    [4, 'Deadline exceeded after 3.002s,name resolution: 0.001s,Waiting for LB pick', 'timeout'],
    [14, 'Name resolution failed for target dns:matchbox.invalid:8081', 'dns'],
    [
      14,
      "No connection established. Last error: Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list: . Resolution note: ",
      'serverName',
    ],
    [
      14,
      'No connection established. Last error: Error: unable to verify the first certificate. Resolution note: ',
      'unknownCA',
    ],
    [
      14,
      'No connection established. Last error: Error: self-signed certificate in certificate chain. Resolution note: ',
      'unknownCA',
    ],
    [
      14,
      `No connection established. Last error: C0CCC3FD5E7F0000:error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:SSL alert number 48\n${note}`,
      'clientRejected',
    ],
    [
      14,
      'No connection established. Last error: Error: C0EC2575867F0000:error:0A00010B:SSL routines:tls_validate_record_header:wrong version number:../deps/openssl/openssl/ssl/record/methods/tlsany_meth.c:77:\n. Resolution note: ',
      'notTLS',
    ],
    [2, 'open /var/lib/matchbox/profiles/x.json: no such file or directory', 'missing'],
    [5, 'matchbox: No matching Group', 'missing'],
    [2, 'Group requires a Profile', 'invalid'],
    [2, 'json: cannot unmarshal array into Go value of type map[string]interface {}', 'invalid'],
    [2, 'open /var/lib/matchbox/groups/x.json: permission denied', 'server'],
  ];
  for (const [code, details, type] of cases) assert.equal(classify(code, details).type, type, details);
});

test('the alert the server sent is named', () => {
  const bad = classify(
    14,
    `No connection established. Last error: C0CCC3FD5E7F0000:error:0A000412:SSL routines:ssl3_read_bytes:ssl/tls alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:SSL alert number 42\n${note}`,
  );
  assert.deepEqual(bad, { type: 'clientRejected', alert: 'bad certificate' });
  const required = classify(
    14,
    `No connection established. Last error: C0:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:SSL alert number 116\n${note}`,
  );
  assert.deepEqual(required, { type: 'clientRejected', alert: 'certificate required' });
});

test('a missing object is NotFound only for reads and deletes; a failed write is a server error', () => {
  const ctx = { endpoint: 'm:8081', host: 'm', timeoutMs: 1000, kind: 'group' as const, id: 'ns.g' };
  const missing = classify(2, 'open /x/groups/ns.g.json: no such file or directory');
  assert.equal(toMatchboxError(missing, { ...ctx, operation: 'GroupGet' }).reason, 'NotFound');
  assert.equal(toMatchboxError(missing, { ...ctx, operation: 'GroupPut' }).reason, 'ServerError');
  assert.equal(
    toMatchboxError(classify(5, 'matchbox: No matching Profile'), {
      ...ctx,
      kind: 'profile',
      id: 'mac=aa:bb:cc:dd:ee:01',
      operation: 'SelectProfile',
    }).message,
    'a group on Matchbox at m:8081 matches mac=aa:bb:cc:dd:ee:01, but its profile is missing or invalid',
  );
});
