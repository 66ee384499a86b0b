// `sops-agent recipient`: prints age recipients — of key files given on the command line, or of the
// host's own scopes — so they can be pasted into .sops.yaml. Only public keys are ever printed.

import * as path from "node:path";
import type { HostRecipient } from "../core/report.js";
import { readAccounts } from "../host/accounts.js";
import { discoverManifests } from "../host/discovery.js";
import { loadScopes } from "../host/load-scopes.js";
import { RootFs } from "../host/rootfs.js";
import { ageFromKeyFile } from "../sops/age.js";
import { scopeIdentities } from "../sops/identities.js";
import { parseFlags } from "./args.js";
import { EXIT } from "./exit.js";
import { type CliIo, UsageError } from "./io.js";
import { rootDirProblem } from "./root-dir.js";
import { escapeTerminal } from "./terminal.js";

export type { CliIo } from "./io.js";

export const RECIPIENT_HELP = `Usage: sops-agent recipient [--root DIR] [FILE...]

Prints age recipients (age1…), one line per FILE in order. A FILE is an ssh-ed25519 public key, an
OpenSSH private key (only its public half is read) or an age identity file. FILE paths are relative to the
current directory, never under --root.

Without FILE: the age recipients of the host's sops-nix scopes, derived from the keys their manifests
name, as "<scope>\\t<recipient>\\t<key file>" lines.

Options:
  --root DIR    read the host as if DIR were / (only used without FILE)
  -h, --help    show this help

Exit status:
  0   every recipient printed
  1   the host has no age recipient (without FILE)
  2   usage error: a bad flag, a FILE that cannot be read or holds no key
  70  internal error
`;

/** Key files are small; anything bigger is not one. */
const MAX_KEY_BYTES = 64 * 1024;

export async function recipientCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals: files } = parseFlags({
    args,
    options: { root: { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
  });
  if (values.help === true) {
    io.stdout(RECIPIENT_HELP);
    return EXIT.ok;
  }
  if (files.length > 0) return fileRecipients(files, io);
  const rootProblem = rootDirProblem(values.root ?? "/");
  if (rootProblem !== null) throw new UsageError(`--root: ${rootProblem}`);
  const recipients = hostRecipients(values.root ?? "/", io.env);
  if (recipients.length === 0) {
    io.stderr(
      "sops-agent recipient: no age recipient found: no manifest, or no readable age or ssh-ed25519 key\n",
    );
    return EXIT.critical;
  }
  const t = escapeTerminal;
  io.stdout(recipients.map((r) => `${t(r.scope)}\t${t(r.recipient)}\t${t(r.source)}\n`).join(""));
  return EXIT.ok;
}

function fileRecipients(files: readonly string[], io: CliIo): number {
  // Real paths: a RootFs at `/` still gives bounded reads and errno-only errors.
  const fs = new RootFs("/");
  const lines: string[] = [];
  for (const file of files) {
    const text = fs.readText(path.resolve(io.cwd, file), MAX_KEY_BYTES);
    if (typeof text !== "string")
      throw new UsageError(`${escapeTerminal(file)}: cannot read (${text.error})`);
    const result = ageFromKeyFile(text);
    if (!result.ok) throw new UsageError(`${escapeTerminal(file)}: ${result.reason}`);
    // An identity file may hold several identities; each recipient gets its own line.
    lines.push(...result.recipients);
  }
  io.stdout(lines.map((l) => `${l}\n`).join(""));
  return EXIT.ok;
}

/** The host's own age recipients, per scope, from the manifests discovery finds under `root`. */
export function hostRecipients(root: string, env: NodeJS.ProcessEnv): HostRecipient[] {
  const fs = new RootFs(root);
  const discoveryEnv = {
    uid: process.getuid?.() ?? 0,
    xdgRuntimeDir: env.XDG_RUNTIME_DIR,
    darwinUserTempDir: () => null,
  };
  const { scopes } = loadScopes(fs, discoverManifests(fs, readAccounts(fs), discoveryEnv));
  return scopes.flatMap((scope) => scopeIdentities(fs, scope));
}
