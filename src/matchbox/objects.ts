// The objects Matchbox stores, in the JSON shape of its FileStore files (snake_case keys, as the
// generated Go structs tag them), and MAC handling with the semantics of Go's net.ParseMAC, which
// is what Matchbox uses when it reads a `mac` selector from disk or a `mac` label from a request.

/** storagepb.NetBoot. */
export interface NetBoot {
  kernel: string;
  initrd: string[];
  args: string[];
}

/**
 * storagepb.Profile. Empty optional fields are absent (the wire's proto3 defaults are dropped on
 * read), so a profile read back from Matchbox deep-equals the one rendered. ignition_id and
 * cloud_id are never written by metalbox but are kept when read.
 */
export interface Profile {
  id: string;
  name?: string;
  /** Absent means no boot config: Matchbox then answers /ipxe with 404. */
  boot?: NetBoot;
  generic_id?: string;
  ignition_id?: string;
  cloud_id?: string;
}

/** storagepb.Group with `metadata` decoded: on the wire it is JSON bytes of an object (a RichGroup on disk). */
export interface Group {
  id: string;
  name?: string;
  profile: string;
  selector: Record<string, string>;
  metadata: Record<string, unknown>;
}

const HEX_PAIR = /^[0-9a-fA-F]{2}$/;
const HEX_QUAD = /^[0-9a-fA-F]{4}$/;
// EUI-48, EUI-64 and 20-byte IP-over-InfiniBand addresses, the lengths net.ParseMAC accepts.
const MAC_LENGTHS = new Set([6, 8, 20]);

/**
 * Parses a MAC as Go's net.ParseMAC does (aa:bb:.., aa-bb-.., aabb.ccdd.eeff; 6, 8 or 20 bytes;
 * any case) and returns Go's String() form: lowercase, colon-separated. Undefined if not a MAC.
 */
export function normalizeMac(value: string): string | undefined {
  let bytes: string[];
  if (value.includes('.')) {
    const quads = value.split('.');
    if (!quads.every((q) => HEX_QUAD.test(q))) return undefined;
    bytes = quads.flatMap((q) => [q.slice(0, 2), q.slice(2)]);
  } else {
    const sep = value[2];
    if (sep !== ':' && sep !== '-') return undefined;
    bytes = value.split(sep);
    if (!bytes.every((b) => HEX_PAIR.test(b))) return undefined;
  }
  if (!MAC_LENGTHS.has(bytes.length)) return undefined;
  return bytes.join(':').toLowerCase();
}

/** True for a selector key Matchbox treats as a MAC (it compares the key case-insensitively). */
export const isMacKey = (key: string): boolean => key.toLowerCase() === 'mac';

/**
 * A selector with every MAC value in lowercase colon form. Matchbox's gRPC GroupPut stores the
 * selector as given, and the HTTP side compares byte for byte against the normalised request
 * MAC, so an un-normalised MAC would never match. Throws on a value that is not a MAC.
 */
export function normalizeSelector(selector: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(selector)) {
    if (!isMacKey(key)) {
      out[key] = value;
      continue;
    }
    const mac = normalizeMac(value);
    if (mac === undefined) throw new RangeError(`selector.${key}: "${value}" is not a MAC address`);
    out[key] = mac;
  }
  return out;
}

/** JSON with object keys sorted at every level, so equal values give equal strings. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

/**
 * Whether two profiles are the same Matchbox object: what drift repair compares. Matchbox
 * re-marshals what it stores (sorted keys), so the comparison ignores key order.
 */
export const sameProfile = (a: Profile, b: Profile): boolean => canonicalJson(a) === canonicalJson(b);

/** Whether two groups are the same Matchbox object; metadata is compared as data, not as bytes. */
export const sameGroup = (a: Group, b: Group): boolean => canonicalJson(a) === canonicalJson(b);
