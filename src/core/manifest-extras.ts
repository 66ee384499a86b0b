// The manifest fields only a preflight needs, which the declared model leaves out: each secret's
// `sopsFileHash` and where each template's text comes from. Pure; the manifest was validated by
// parseManifest already, so anything of an unexpected shape is simply skipped here.

export interface TemplateSource {
  readonly name: string;
  /** `content` when non-empty (sops-install-secrets uses it first), else null. */
  readonly content: string | null;
  /** `file`, a store path, used when `content` is empty. */
  readonly file: string | null;
}

export interface ManifestExtras {
  /** Secret name -> sopsFileHash, for secrets that carry a non-empty one (validateSopsFiles on). */
  readonly sopsFileHashes: ReadonlyMap<string, string>;
  readonly templates: readonly TemplateSource[];
}

export function manifestExtras(text: string): ManifestExtras {
  const hashes = new Map<string, string>();
  const templates: TemplateSource[] = [];
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { sopsFileHashes: hashes, templates };
  }
  for (const s of listOf(doc, "secrets")) {
    const name = stringOf(s, "name");
    const hash = stringOf(s, "sopsFileHash");
    if (name !== null && hash !== null && hash !== "") hashes.set(name, hash);
  }
  for (const t of listOf(doc, "templates")) {
    const name = stringOf(t, "name");
    if (name === null) continue;
    const content = stringOf(t, "content");
    const file = stringOf(t, "file");
    templates.push({
      name,
      content: content === null || content === "" ? null : content,
      file: file === null || file === "" ? null : file,
    });
  }
  return { sopsFileHashes: hashes, templates };
}

function listOf(doc: unknown, field: string): unknown[] {
  if (typeof doc !== "object" || doc === null) return [];
  const value = (doc as Record<string, unknown>)[field];
  return Array.isArray(value) ? value : [];
}

function stringOf(item: unknown, field: string): string | null {
  if (typeof item !== "object" || item === null) return null;
  const value = (item as Record<string, unknown>)[field];
  return typeof value === "string" ? value : null;
}
