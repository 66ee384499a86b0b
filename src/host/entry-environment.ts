// The SOPS_AGE_* variables `sops.environment` hands to sops-install-secrets, read from the entry point that
// runs it (pure: the text was read by discovery). sops-nix 56b24064 writes them:
// - the activation script: `( export NAME='value' … <sops-install-secrets> <manifest> )`, one subshell per
//   manifest (modules/sops/with-environment.nix:5-12, used at modules/sops/default.nix:510 and
//   modules/nix-darwin/default.nix:183);
// - the NixOS unit sops-install-secrets.service: `Environment="NAME=value"` lines (modules/sops/default.nix:478);
// - home-manager's sops-nix.service: one `Environment='A=x' 'B=y'` line (modules/home-manager/sops.nix:386-388);
// - home-manager's LaunchAgent: the plist's EnvironmentVariables dict (modules/home-manager/sops.nix:400).
// SOPS_AGE_KEY holds private keys: it is parsed here into what sops derives from it and dropped. Of the two
// key commands only their presence is kept.

import type { ScopeEnvironment } from "../core/model.js";
import { parseInlineIdentities } from "../sops/identity-file.js";

const NAMES = [
  "SOPS_AGE_KEY",
  "SOPS_AGE_KEY_FILE",
  "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
  "SOPS_AGE_KEY_CMD",
  "SOPS_AGE_SSH_PRIVATE_KEY_CMD",
] as const;
type Name = (typeof NAMES)[number];

/** Null when the entry point sets none of the three variables for this manifest. */
export function environmentFor(file: string, text: string, manifest: string): ScopeEnvironment | null {
  const vars = file.endsWith(".plist")
    ? plistVariables(text)
    : file.endsWith(".service")
      ? unitVariables(text)
      : shellVariables(text, manifest);
  return environmentOf(vars);
}

function environmentOf(vars: ReadonlyMap<string, string>): ScopeEnvironment | null {
  const get = (name: Name) => vars.get(name);
  const keyFile = get("SOPS_AGE_KEY_FILE");
  const sshKeyFile = get("SOPS_AGE_SSH_PRIVATE_KEY_FILE");
  const inline = get("SOPS_AGE_KEY");
  // sops tests each with os.LookupEnv: set, even to "", is set (an empty command then fails in sops).
  const keyCommand = get("SOPS_AGE_KEY_CMD") !== undefined;
  const sshKeyCommand = get("SOPS_AGE_SSH_PRIVATE_KEY_CMD") !== undefined;
  if (
    keyFile === undefined &&
    sshKeyFile === undefined &&
    inline === undefined &&
    !keyCommand &&
    !sshKeyCommand
  )
    return null;
  return {
    ...(keyFile === undefined ? {} : { ageKeyFile: keyFile }),
    ...(sshKeyFile === undefined ? {} : { ageSshKeyFile: sshKeyFile }),
    ...(inline === undefined ? {} : { ageKeyInline: parseInlineIdentities(inline) }),
    ...(keyCommand ? { ageKeyCommand: true as const } : {}),
    ...(sshKeyCommand ? { ageSshKeyCommand: true as const } : {}),
  };
}

const EXPORT = /^[ \t]*export ([A-Za-z_][A-Za-z0-9_]*)='([^']*)'[ \t]*$/gm;
const OPEN_SUBSHELL = /^[ \t]*\([ \t]*$/gm;

/**
 * The exports of the with-environment subshell that runs `manifest`: the lines between the last `(` line
 * before the manifest's line and that line, when they are all `export NAME='value'` (a value may span lines).
 */
function shellVariables(text: string, manifest: string): Map<string, string> {
  const vars = new Map<string, string>();
  const at = text.indexOf(manifest);
  if (at < 0) return vars;
  const prefix = text.slice(0, text.lastIndexOf("\n", at) + 1);
  let start = -1;
  for (const m of prefix.matchAll(OPEN_SUBSHELL)) start = m.index + m[0].length;
  if (start < 0) return vars;
  const block = prefix.slice(start);
  if (block.replace(EXPORT, "").trim() !== "") return vars;
  for (const m of block.matchAll(EXPORT)) if (m[1] !== undefined) vars.set(m[1], m[2] ?? "");
  return vars;
}

/**
 * `Environment=` assignments of a unit's [Service] section, unquoted as systemd does (words split on
 * blanks, `"…"` and `'…'` quoting with C escapes); an empty assignment resets the list; later ones win.
 */
function unitVariables(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  let section = "";
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith("[")) section = line;
    if (section !== "[Service]" || !line.startsWith("Environment=")) continue;
    const value = line.slice("Environment=".length);
    if (value.trim() === "") {
      vars.clear();
      continue;
    }
    for (const word of systemdWords(value)) {
      const eq = word.indexOf("=");
      if (eq > 0) vars.set(word.slice(0, eq), word.slice(eq + 1));
    }
  }
  return vars;
}

const C_ESCAPES: Record<string, string> = { n: "\n", t: "\t", r: "\r", "\\": "\\", '"': '"', "'": "'" };

function systemdWords(value: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] ?? "";
    if (c === "\\" && i + 1 < value.length) {
      const next = value[++i] ?? "";
      word += C_ESCAPES[next] ?? next;
      inWord = true;
    } else if (quote !== null) {
      if (c === quote) quote = null;
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === " " || c === "\t") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

const PLIST_ENV = /<key>EnvironmentVariables<\/key>\s*<dict>([\s\S]*?)<\/dict>/;
const PLIST_PAIR = /<key>([^<]*)<\/key>\s*<string>([^<]*)<\/string>/g;

/** The EnvironmentVariables dict of a launchd plist (entities were decoded when it was read). */
function plistVariables(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  const dict = PLIST_ENV.exec(text)?.[1];
  if (dict === undefined) return vars;
  for (const m of dict.matchAll(PLIST_PAIR)) if (m[1] !== undefined) vars.set(m[1], m[2] ?? "");
  return vars;
}
