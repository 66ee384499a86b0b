// What changed between two declarations of one scope (two generations of a manifest). Pure.
//
// sops-install-secrets writes every file fresh on each activation, so the files on disk cannot say what a
// deploy changed: every inode and mtime is new. The manifests can. The comparison is by declaration only —
// names, sops file, key, format, hash, owner, group, mode, template source — never by a secret's value,
// which the agent never reads.

import type {
  DeclaredFile,
  DeclaredScope,
  DeclaredSecret,
  DeclaredTemplate,
  Principal,
  TemplateSource,
} from "./model.js";

export type FileKind = DeclaredFile["kind"];

/** What makes a secret decrypt to something else: a different sops file, hash, key or format. */
export type RekeyField = "sopsFile" | "sopsFileHash" | "key" | "format";
/** Who may read the file. */
export type AccessField = "owner" | "group" | "mode";
export type TemplateSourceKind = TemplateSource["kind"];

export type DeclarationChange =
  | { readonly change: "added"; readonly kind: FileKind; readonly name: string }
  | { readonly change: "removed"; readonly kind: FileKind; readonly name: string }
  | { readonly change: "moved"; readonly kind: FileKind; readonly name: string }
  | {
      readonly change: "rekeyed";
      readonly kind: "secret";
      readonly name: string;
      readonly fields: readonly RekeyField[];
    }
  | {
      readonly change: "access";
      readonly kind: FileKind;
      readonly name: string;
      readonly fields: readonly AccessField[];
    }
  | {
      readonly change: "template-source";
      readonly kind: "template";
      readonly name: string;
      /** Where the text came from before and after; equal kinds mean the content or the file differs. */
      readonly from: TemplateSourceKind;
      readonly to: TemplateSourceKind;
    };

export type ChangeType = DeclarationChange["change"];

/** The order changes are listed in, per file: what appeared or vanished first, then what changed in place. */
const CHANGE_ORDER: readonly ChangeType[] = [
  "added",
  "removed",
  "moved",
  "rekeyed",
  "template-source",
  "access",
];

/**
 * Every change from `before` to `after`, sorted by kind (secrets, then templates), name and change type.
 * `null` stands for a scope that is not declared: every file of the other side is added or removed.
 * A file is identified by its kind and name, as sops-nix's attribute names identify it.
 */
export function diffDeclarations(
  before: DeclaredScope | null,
  after: DeclaredScope | null,
): DeclarationChange[] {
  const changes: DeclarationChange[] = [];
  diffFiles(before?.secrets ?? [], after?.secrets ?? [], secretChanges, changes);
  diffFiles(before?.templates ?? [], after?.templates ?? [], templateChanges, changes);
  return changes.sort(compareChanges);
}

function diffFiles<F extends DeclaredFile>(
  before: readonly F[],
  after: readonly F[],
  inPlace: (a: F, b: F, out: DeclarationChange[]) => void,
  out: DeclarationChange[],
): void {
  const old = byName(before);
  const now = byName(after);
  for (const [name, file] of old) {
    if (!now.has(name)) out.push({ change: "removed", kind: file.kind, name });
  }
  for (const [name, file] of now) {
    const previous = old.get(name);
    if (previous === undefined) out.push({ change: "added", kind: file.kind, name });
    else inPlace(previous, file, out);
  }
}

/** The last declaration of a name wins, as the last write of a file does. */
function byName<F extends DeclaredFile>(files: readonly F[]): Map<string, F> {
  const map = new Map<string, F>();
  for (const f of files) map.set(f.name, f);
  return map;
}

function secretChanges(a: DeclaredSecret, b: DeclaredSecret, out: DeclarationChange[]): void {
  commonChanges(a, b, out);
  const fields: RekeyField[] = [];
  if (a.sopsFile !== b.sopsFile) fields.push("sopsFile");
  if (a.sopsFileHash !== b.sopsFileHash) fields.push("sopsFileHash");
  if (a.key !== b.key) fields.push("key");
  if (a.format !== b.format) fields.push("format");
  if (fields.length > 0) out.push({ change: "rekeyed", kind: "secret", name: b.name, fields });
}

function templateChanges(a: DeclaredTemplate, b: DeclaredTemplate, out: DeclarationChange[]): void {
  commonChanges(a, b, out);
  if (!sameSource(a.source, b.source)) {
    out.push({
      change: "template-source",
      kind: "template",
      name: b.name,
      from: a.source.kind,
      to: b.source.kind,
    });
  }
}

function commonChanges(a: DeclaredFile, b: DeclaredFile, out: DeclarationChange[]): void {
  if (a.path !== b.path) out.push({ change: "moved", kind: b.kind, name: b.name });
  const fields: AccessField[] = [];
  if (!samePrincipal(a.owner, b.owner)) fields.push("owner");
  if (!samePrincipal(a.group, b.group)) fields.push("group");
  // By the parsed bits: "400" and "0400" are the same mode.
  if (a.mode !== b.mode) fields.push("mode");
  if (fields.length > 0) out.push({ change: "access", kind: b.kind, name: b.name, fields });
}

function samePrincipal(a: Principal, b: Principal): boolean {
  if (a.kind === "name") return b.kind === "name" && a.name === b.name;
  return b.kind === "id" && a.id === b.id;
}

function sameSource(a: TemplateSource, b: TemplateSource): boolean {
  switch (a.kind) {
    case "content":
      return b.kind === "content" && a.sha256 === b.sha256;
    case "file":
      return b.kind === "file" && a.path === b.path;
    case "none":
      return b.kind === "none";
  }
}

function compareChanges(a: DeclarationChange, b: DeclarationChange): number {
  if (a.kind !== b.kind) return a.kind === "secret" ? -1 : 1;
  if (a.name !== b.name) return a.name < b.name ? -1 : 1;
  return CHANGE_ORDER.indexOf(a.change) - CHANGE_ORDER.indexOf(b.change);
}

/**
 * One short phrase per change, without the file's name (callers print the name their own way, escaped
 * for a terminal or as a log field): "added", "re-keyed (sopsFile, sopsFileHash)", "owner, mode changed",
 * "template source changed (content → file)".
 */
export function changeSummary(c: DeclarationChange): string {
  switch (c.change) {
    case "added":
    case "removed":
    case "moved":
      return c.change;
    case "rekeyed":
      return `re-keyed (${c.fields.join(", ")})`;
    case "access":
      return `${c.fields.join(", ")} changed`;
    case "template-source":
      return c.from === c.to
        ? `template ${c.to === "content" ? "content" : "file"} changed`
        : `template source changed (${c.from} → ${c.to})`;
  }
}
