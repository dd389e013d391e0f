// TLS against sushy-tools serving a certificate from a throw-away CA: verification is on by default.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { staticCredentials } from '../../../src/bmc/credentials.ts';
import { BmcTlsError } from '../../../src/bmc/errors.ts';
import { createBmcFactory } from '../../../src/bmc/factory.ts';
import { type SushyPeer, startSushy } from '../../env/sushy.ts';

let sushy: SushyPeer;
const factory = createBmcFactory({ redfish: { retries: 0 } });
before(async () => {
  sushy = await startSushy({
    name: 'sushy-tls',
    tls: true,
    systems: [{ name: 'tls-01', macs: ['52:54:00:cc:00:01'] }],
  });
});
after(async () => {
  await sushy?.destroy();
});

const create = (extra: { caBundle?: string; disableCertificateVerification?: boolean }) =>
  factory.create({
    address: `redfish://127.0.0.1:${sushy.port}`,
    credentials: staticCredentials(sushy.username, sushy.password),
    ...extra,
  });

test('an emulator with a certificate from an unknown CA is refused by default', async () => {
  const driver = create({});
  await assert.rejects(driver.powerState(), (error: unknown) => {
    assert.ok(error instanceof BmcTlsError);
    assert.match(
      error.message,
      /could not be verified \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/,
    );
    assert.match(error.message, /provide the CA that signed it, or set disableCertificateVerification/);
    return true;
  });
  await driver.close();
});

test('the emulator is accepted with the CA that signed its certificate', async () => {
  const driver = create({ caBundle: sushy.ca!.cert });
  assert.equal(await driver.powerState(), 'off');
  await driver.close();
});

test('the emulator is accepted when certificate verification is explicitly disabled', async () => {
  const driver = create({ disableCertificateVerification: true });
  assert.equal(await driver.powerState(), 'off');
  await driver.close();
});

test('a CA that did not sign the certificate does not help', async () => {
  const { createCA } = await import('../../env/pki.ts');
  const { scratchDir } = await import('../../env/peers.ts');
  const scratch = scratchDir('other-ca');
  try {
    const other = createCA(scratch.dir, 'unrelated-ca');
    const driver = create({ caBundle: other.cert });
    await assert.rejects(driver.powerState(), BmcTlsError);
    await driver.close();
  } finally {
    scratch.remove();
  }
});
