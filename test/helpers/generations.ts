// Earlier generations laid out the way the NixOS system profile and home-manager's profile keep them, each
// naming its manifest the way the running system does: for the leftovers and secrets-in-use tests.

import * as fs from "node:fs";
import type { HostLayout } from "../../src/example/layout.js";
import { storeHash } from "../../src/example/layout.js";

export interface ManifestJson {
  secrets: { name: string; path: string; [k: string]: unknown }[];
  templates: { name: string; path: string; [k: string]: unknown }[];
  [k: string]: unknown;
}

export const INSTALL = `/nix/store/${storeHash("sops-install-secrets")}-sops-install-secrets-0.0.1/bin/sops-install-secrets`;

export function currentManifest(host: HostLayout, scope: string): ManifestJson {
  const laid = host.scopes.get(scope);
  if (laid === undefined) throw new Error(`no scope ${scope}`);
  return JSON.parse(fs.readFileSync(host.real(laid.manifestPath), "utf8")) as ManifestJson;
}

/** A manifest an earlier generation named: the current one changed by `edit`, at its own store path. */
export function formerManifest(
  host: HostLayout,
  scope: string,
  seed: string,
  edit: (m: ManifestJson) => void,
): string {
  const manifest = currentManifest(host, scope);
  edit(manifest);
  const forUsers = scope === "for-users" ? "-for-users" : "";
  const storePath = `/nix/store/${storeHash(`former-${seed}`)}-manifest${forUsers}.json`;
  host.writeFile(storePath, JSON.stringify(manifest), 0o444);
  return storePath;
}

/** System generation N in /nix/var/nix/profiles, a toplevel whose activation names `manifest`. */
export function systemGeneration(
  host: HostLayout,
  n: number,
  manifest: string,
  activation: "classic" | "systemd" = "classic",
): void {
  const top = `/nix/store/${storeHash(`toplevel-${n}`)}-nixos-system-example-${n}`;
  if (activation === "classic") {
    host.writeFile(
      `${top}/activate`,
      `#!/bin/sh\n#### Activation script snippet setupSecrets:\n${INSTALL} ${manifest}\n`,
      0o555,
    );
  } else {
    host.writeFile(`${top}/activate`, "#!/bin/sh\n# systemd-based activation\n", 0o555);
    host.writeFile(
      `${top}/etc/systemd/system/sops-install-secrets.service`,
      `[Service]\nType=oneshot\nExecStart=${INSTALL} ${manifest}\n`,
    );
  }
  host.symlink(`/nix/var/nix/profiles/system-${n}-link`, top);
}

/** The running system as profile generation N (the layout's /run/current-system). */
export function currentSystemGeneration(host: HostLayout, n: number): void {
  host.symlink(`/nix/var/nix/profiles/system-${n}-link`, fs.readlinkSync(host.real("/run/current-system")));
  host.symlink("/nix/var/nix/profiles/system", `system-${n}-link`);
}

/** home-manager generation N of a user, in the profile directory home-manager picks. */
export function homeManagerGeneration(
  host: HostLayout,
  user: string,
  n: number,
  manifest: string,
  dir: string,
): void {
  const gen = `/nix/store/${storeHash(`hm-generation-${user}-${n}`)}-home-manager-generation`;
  const script = `/nix/store/${storeHash(`hm-script-${user}-${n}`)}-sops-nix-user`;
  host.writeFile(script, `#!/bin/sh\nset -eu\n${INSTALL} -ignore-passwd ${manifest}\n`, 0o555);
  host.writeFile(
    `${gen}/home-files/.config/systemd/user/sops-nix.service`,
    `[Service]\nType=oneshot\nExecStart=${script}\n`,
  );
  host.writeFile(`${gen}/activate`, "#!/bin/sh\n", 0o555);
  host.symlink(`${dir}/home-manager-${n}-link`, gen);
}
