// What the declared model leaves out and only a preflight needs: the text of each template, to find the
// placeholders it uses (the model keeps a digest only). Pure; the manifest was validated by parseManifest
// already, so anything of an unexpected shape is simply skipped here.

export interface TemplateOrigin {
  readonly name: string;
  /** `content` when non-empty (sops-install-secrets uses it first), else null. */
  readonly content: string | null;
  /** `file`, a store path, used when `content` is empty. */
  readonly file: string | null;
}

export function templateOrigins(text: string): TemplateOrigin[] {
  const templates: TemplateOrigin[] = [];
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return templates;
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
  return templates;
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
