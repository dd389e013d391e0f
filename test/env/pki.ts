// Throw-away PKI for one test run: a CA, and leaf certs for servers (with SANs) and clients
// (clientAuth EKU, as Matchbox's Go TLS stack requires). Uses Debian's openssl CLI because
// node:crypto cannot sign certificates.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertFiles {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

export interface CertificateAuthority extends CertFiles {
  dir: string;
  issue(opts: IssueOptions): CertFiles;
}

export interface IssueOptions {
  name: string;
  commonName: string;
  usage: 'server' | 'client';
  /** e.g. ['IP:127.0.0.1', 'DNS:localhost']; required for server certs. */
  subjectAltNames?: string[];
  /** Organisation (for kube client certs this is the group). */
  organization?: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function readPair(certFile: string, keyFile: string): CertFiles {
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

export function createCA(dir: string, commonName = 'metalbox-test-ca'): CertificateAuthority {
  const prefix = commonName.replace(/[^a-z0-9-]/gi, '_');
  const keyFile = join(dir, `${prefix}.key`);
  const certFile = join(dir, `${prefix}.crt`);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile], dir);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      keyFile,
      '-sha256',
      '-days',
      '2',
      '-subj',
      `/CN=${commonName}`,
      '-out',
      certFile,
    ],
    dir,
  );
  const ca = readPair(certFile, keyFile);
  let serial = 1;
  return {
    ...ca,
    dir,
    issue(opts) {
      const leafKey = join(dir, `${opts.name}.key`);
      const leafCsr = join(dir, `${opts.name}.csr`);
      const leafCert = join(dir, `${opts.name}.crt`);
      const extFile = join(dir, `${opts.name}.ext`);
      const subject = `/CN=${opts.commonName}${opts.organization ? `/O=${opts.organization}` : ''}`;
      openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', leafKey], dir);
      openssl(['req', '-new', '-key', leafKey, '-subj', subject, '-out', leafCsr], dir);
      const ext = [
        'basicConstraints=CA:FALSE',
        'keyUsage=digitalSignature,keyEncipherment',
        `extendedKeyUsage=${opts.usage === 'server' ? 'serverAuth' : 'clientAuth'}`,
      ];
      if (opts.subjectAltNames?.length) ext.push(`subjectAltName=${opts.subjectAltNames.join(',')}`);
      writeFileSync(extFile, `${ext.join('\n')}\n`);
      openssl(
        [
          'x509',
          '-req',
          '-in',
          leafCsr,
          '-CA',
          certFile,
          '-CAkey',
          keyFile,
          '-set_serial',
          String(++serial),
          '-days',
          '2',
          '-sha256',
          '-extfile',
          extFile,
          '-out',
          leafCert,
        ],
        dir,
      );
      return readPair(leafCert, leafKey);
    },
  };
}
