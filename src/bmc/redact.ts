// Keeps secrets out of anything a BMC sends back that might end up in an error or a log: a hostile or
// buggy BMC can echo the login body, and error snippets are shown to people.

const MIN_SECRET_LENGTH = 3;

/** Replaces every occurrence of each secret (and its base64 / URL-encoded forms) with `***`. */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const secret of secrets) {
    if (!secret || secret.length < MIN_SECRET_LENGTH) continue;
    for (const form of new Set([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)])) {
      out = out.split(form).join('***');
    }
  }
  // Basic auth headers carry user:password base64-encoded; never echo one.
  return out.replace(/\b(Basic|Bearer)\s+[A-Za-z0-9+/=._-]{8,}/g, '$1 ***');
}

/** A short, single-line excerpt of a response body for an error message. */
export function snippet(text: string, secrets: readonly (string | undefined)[], max = 160): string {
  const flat = redact(text, secrets).replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}
