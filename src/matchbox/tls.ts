// mTLS material for a Matchbox endpoint: loading it (PEM strings, files, or a kubernetes.io/tls-
// shaped Secret), checking it before any dial, and inspecting certificates to explain a failed
// handshake. Only subjects, issuers and names are ever reported; PEM contents never are.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import * as tls from 'node:tls';
import { MatchboxConfigError } from './errors.ts';

/** PEM strings: the CA that signed Matchbox's server cert, and metalbox's client cert and key. */
export interface MatchboxTLS {
  ca: string;
  cert: string;
  key: string;
}

export function loadTLSFromFiles(files: { caFile: string; certFile: string; keyFile: string }): MatchboxTLS {
  const read = (field: string, path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      throw new MatchboxConfigError(
        field,
        `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`,
      );
    }
  };
  return {
    ca: read('caFile', files.caFile),
    cert: read('certFile', files.certFile),
    key: read('keyFile', files.keyFile),
  };
}

/** The keys of a Secret holding Matchbox client credentials (those of kubernetes.io/tls plus ca.crt). */
export const SECRET_KEYS = { ca: 'ca.crt', cert: 'tls.crt', key: 'tls.key' } as const;

/** Reads {data: {'ca.crt', 'tls.crt', 'tls.key'}} (base64, as the API serves Secrets). */
export function loadTLSFromSecret(secret: {
  metadata?: { name?: string; namespace?: string };
  data?: Record<string, string> | null;
}): MatchboxTLS {
  const where = secret.metadata?.name
    ? `Secret ${secret.metadata.namespace ? `${secret.metadata.namespace}/` : ''}${secret.metadata.name}`
    : 'Secret';
  const read = (key: string) => {
    const value = secret.data?.[key];
    if (!value) throw new MatchboxConfigError(`${where} data.${key}`, 'is missing');
    return Buffer.from(value, 'base64').toString('utf8');
  };
  return { ca: read(SECRET_KEYS.ca), cert: read(SECRET_KEYS.cert), key: read(SECRET_KEYS.key) };
}

/** What a person needs to recognise a certificate. */
export interface CertSummary {
  subject: string;
  issuer: string;
  /** e.g. ['IP:127.0.0.1', 'DNS:localhost'] */
  names: string[];
  validTo: string;
  /** Extended key usages by name where known (serverAuth, clientAuth), else OID. */
  extendedKeyUsage?: string[];
}

const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
};

const oneLine = (dn: string) => dn.split('\n').filter(Boolean).join(', ');

function subjectNames(altNames: string | undefined): string[] {
  if (!altNames) return [];
  return altNames.split(', ').map((n) => n.replace(/^IP Address:/, 'IP:'));
}

export function summarizeCert(cert: X509Certificate): CertSummary {
  const summary: CertSummary = {
    subject: oneLine(cert.subject),
    issuer: oneLine(cert.issuer),
    names: subjectNames(cert.subjectAltName),
    validTo: cert.validTo,
  };
  if (Array.isArray(cert.keyUsage))
    summary.extendedKeyUsage = cert.keyUsage.map((oid) => EKU_NAMES[oid] ?? oid);
  return summary;
}

/** The parsed, checked credentials: what the client dials with and what errors describe. */
export interface CheckedTLS extends MatchboxTLS {
  caSummary: CertSummary;
  clientSummary: CertSummary;
}

/** Parses the PEMs and checks the key belongs to the cert, so bad input fails before any dial. */
export function checkTLS(material: MatchboxTLS): CheckedTLS {
  const parseCert = (field: string, pem: string) => {
    try {
      return new X509Certificate(pem);
    } catch {
      throw new MatchboxConfigError(field, 'is not a PEM certificate (expected -----BEGIN CERTIFICATE-----)');
    }
  };
  const ca = parseCert('ca', material.ca);
  const cert = parseCert('cert', material.cert);
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(material.key);
  } catch {
    throw new MatchboxConfigError(
      'key',
      'is not a PEM private key (expected -----BEGIN ... PRIVATE KEY-----)',
    );
  }
  if (!cert.checkPrivateKey(key)) {
    throw new MatchboxConfigError(
      'key',
      `does not belong to the client certificate (${oneLine(cert.subject)})`,
    );
  }
  return { ...material, caSummary: summarizeCert(ca), clientSummary: summarizeCert(cert) };
}

/**
 * Connects once without verifying anything, to read the certificate the server presents: used
 * only after a handshake already failed, to say which CA signed it and which names it carries.
 */
export function fetchServerCert(
  host: string,
  port: number,
  material: MatchboxTLS,
  timeoutMs: number,
): Promise<CertSummary | undefined> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host,
      port,
      // The whole point is to read a certificate that fails verification.
      rejectUnauthorized: false,
      ...(isIP(host) ? {} : { servername: host }),
      cert: material.cert,
      key: material.key,
      ALPNProtocols: ['h2'],
    });
    const done = (summary: CertSummary | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(summary);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.once('secureConnect', () => {
      const peer = socket.getPeerX509Certificate();
      done(peer ? summarizeCert(peer) : undefined);
    });
    socket.once('error', () => done(undefined));
  });
}
