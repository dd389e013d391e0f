// Which metalbox instance wrote a Matchbox object. The id says which resource declares it
// (`<namespace>.<name>`, see render.ts), but two instances with separate stores can manage the same
// namespace (staging beside production, a migration, a replica without leader election), so every
// object also carries its writer's owner identity. Matchbox keeps no labels; the one free-text
// field it stores for profiles and groups alike, and never interprets, is `name`, so the mark is
// that field: `metalbox:<owner>`, then a space and the resource's displayName when it has one.
//
// An object with metalbox's id shape and:
//   - our mark:     ours to repair and delete;
//   - another mark: another instance's, never written or deleted (reported);
//   - no mark:      written before owners existed: adopted (written with our mark) by the instance
//                   whose store declares its id, and left alone (reported) by every other one.

/** A DNS label, so it reads well in logs and can never contain the separating space. */
export const OWNER_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const MAX_OWNER_LENGTH = 63;
const MARK = 'metalbox:';

/** Why an owner identity is unusable, or undefined when it is fine. */
export function ownerProblem(owner: string): string | undefined {
  if (owner.length > MAX_OWNER_LENGTH) return `is ${owner.length} characters; at most ${MAX_OWNER_LENGTH}`;
  if (!OWNER_PATTERN.test(owner))
    return `"${owner}" must be lowercase letters, digits and "-" (a DNS label such as prod-mgmt)`;
  return undefined;
}

/** The Matchbox `name` of an object written by `owner` for a resource with this displayName. */
export function markedName(owner: string, displayName: string | undefined): string {
  return displayName ? `${MARK}${owner} ${displayName}` : `${MARK}${owner}`;
}

/** The owner a Matchbox object's `name` carries, or undefined when it carries none. */
export function ownerOf(object: { name?: string | undefined }): string | undefined {
  const name = object.name;
  if (!name?.startsWith(MARK)) return undefined;
  const end = name.indexOf(' ', MARK.length);
  const owner = name.slice(MARK.length, end < 0 ? undefined : end);
  return ownerProblem(owner) === undefined ? owner : undefined;
}

/** The displayName part of a Matchbox `name` (the whole name when it carries no mark). */
export function displayNameOf(name: string | undefined): string | undefined {
  if (name === undefined || ownerOf({ name }) === undefined) return name;
  const space = name.indexOf(' ');
  return space < 0 ? undefined : name.slice(space + 1);
}

/** Who holds an object on an endpoint, from the writer's point of view. */
export type Holder = 'absent' | 'ours' | 'unmarked' | { other: string };

export function holderOf(object: { name?: string | undefined } | undefined, owner: string): Holder {
  if (!object) return 'absent';
  const mark = ownerOf(object);
  if (mark === undefined) return 'unmarked';
  return mark === owner ? 'ours' : { other: mark };
}
