// Built generations, laid out the way the modules build them, inside a host tree: a toplevel in a fake
// store whose activate script (or units, or home-files) names manifests in that store. Nothing is
// activated: these are what `nixos-rebuild build`, `darwin-rebuild build` or `home-manager build` leave.

import * as fs from "node:fs";
import * as path from "node:path";
import { sopsYaml, storeHash } from "../../src/example/layout.js";

export interface GenSecret {
  readonly name: string;
  readonly key?: string;
  readonly format?: "yaml" | "json" | "binary" | "dotenv" | "ini";
  /** A store path; see `sopsFile`. */
  readonly sopsFile: string;
  readonly owner?: string | null;
  readonly group?: string | null;
  readonly sopsFileHash?: string;
}

export interface GenManifest {
  readonly ageKeyFile?: string | null;
  readonly ageSshKeyPaths?: readonly string[];
  readonly secrets: readonly GenSecret[];
  readonly templates?: readonly {
    readonly name: string;
    readonly content: string;
    readonly owner?: string;
  }[];
}

export interface GenerationSpec {
  /** Distinguishes the store paths of several generations in one tree. */
  readonly name: string;
  readonly kind?: "nixos" | "nix-darwin" | "home-manager";
  readonly activation?: "classic" | "systemd";
  readonly system?: GenManifest;
  readonly forUsers?: GenManifest;
  /** home-manager: the user's manifest. */
  readonly user?: GenManifest;
  /** NixOS: the users-groups.json the activate script hands update-users-groups.pl; absent: none. */
  readonly accounts?: {
    readonly users: readonly string[];
    readonly groups: readonly string[];
    readonly mutableUsers?: boolean;
  };
  /** NixOS: the generation's etc/fstab. */
  readonly fstab?: string;
}

const INSTALL = `/nix/store/${storeHash("sops-install-secrets")}-sops-install-secrets-0.0.1/bin/sops-install-secrets`;

function write(root: string, hostPath: string, text: string, mode = 0o444): void {
  const real = path.join(root, hostPath);
  fs.mkdirSync(path.dirname(real), { recursive: true });
  fs.writeFileSync(real, text, { mode });
}

/** Writes an encrypted-looking sops file into the store and returns its store path. */
export function sopsFile(
  root: string,
  name: string,
  keys: readonly string[],
  recipients: readonly string[],
): string {
  const store = `/nix/store/${storeHash(`sops-${name}-${keys.join(",")}-${recipients.join(",")}`)}-${name}`;
  write(root, store, sopsYaml(keys, recipients));
  return store;
}

/** Writes any text into the store (a JSON sops file, a template file) and returns its store path. */
export function storeText(root: string, name: string, text: string): string {
  const store = `/nix/store/${storeHash(`${name}-${text}`)}-${name}`;
  write(root, store, text);
  return store;
}

function manifestJson(m: GenManifest, userMode: boolean, forUsers: boolean): string {
  const symlinkPath = userMode ? "%r/secrets" : forUsers ? "/run/secrets-for-users" : "/run/secrets";
  return JSON.stringify({
    secrets: m.secrets.map((s) => ({
      name: s.name,
      key: s.key ?? s.name,
      path: `${symlinkPath}/${s.name}`,
      format: s.format ?? "yaml",
      mode: "0400",
      sopsFile: s.sopsFile,
      ...(userMode
        ? {}
        : {
            owner: s.owner ?? null,
            uid: 0,
            group: s.group ?? null,
            gid: 0,
            neededForUsers: forUsers,
            restartUnits: [],
            reloadUnits: [],
            sopsFileHash: s.sopsFileHash ?? "",
          }),
    })),
    templates: (m.templates ?? []).map((t) => ({
      name: t.name,
      path: `${symlinkPath}/rendered/${t.name}`,
      content: t.content,
      file: "",
      mode: "0400",
      ...(userMode ? {} : { owner: t.owner ?? null, uid: 0, group: null, gid: 0 }),
    })),
    placeholderBySecretName: {},
    secretsMountPoint: userMode ? "%r/secrets.d" : forUsers ? "/run/secrets-for-users.d" : "/run/secrets.d",
    symlinkPath,
    keepGenerations: 1,
    sshKeyPaths: [],
    gnupgHome: null,
    ageKeyFile: m.ageKeyFile ?? null,
    ageSshKeyPaths: m.ageSshKeyPaths ?? [],
    ...(userMode ? {} : { useTmpfs: false }),
    userMode,
    logging: { keyImport: true, secretChanges: true },
  });
}

/** Lays out a built generation under `root` and returns its toplevel's host path. */
export function buildGeneration(root: string, spec: GenerationSpec): string {
  const kind = spec.kind ?? "nixos";
  const manifest = (scope: string, m: GenManifest, userMode: boolean, forUsers: boolean) => {
    const p = `/nix/store/${storeHash(`${spec.name}-${scope}`)}-manifest${forUsers ? "-for-users" : ""}.json`;
    write(root, p, manifestJson(m, userMode, forUsers));
    return p;
  };
  if (kind === "home-manager") {
    const top = `/nix/store/${storeHash(spec.name)}-home-manager-generation`;
    write(root, `${top}/hm-version`, "25.11\n");
    write(root, `${top}/activate`, "#!/usr/bin/env bash\nset -eu\n# home-manager activation\n", 0o555);
    if (spec.user !== undefined) {
      const m = manifest("user", spec.user, true, false);
      const script = storeText(root, "sops-nix-user", `#!/bin/sh\nset -eu\n${INSTALL} -ignore-passwd ${m}\n`);
      write(
        root,
        `${top}/home-files/.config/systemd/user/sops-nix.service`,
        `[Service]\nType=oneshot\nExecStart=${script}\n`,
      );
    }
    return top;
  }
  const top = `/nix/store/${storeHash(spec.name)}-${kind === "nixos" ? "nixos-system-web1-26.05" : "darwin-system-26.05"}`;
  write(root, `${top}/${kind === "nixos" ? "nixos-version" : "darwin-version"}`, "26.05\n");
  const manifests: string[] = [];
  if (spec.system !== undefined) manifests.push(manifest("system", spec.system, false, false));
  if (spec.forUsers !== undefined) manifests.push(manifest("for-users", spec.forUsers, false, true));
  const snippets: string[] = [
    "#!/nix/store/00000000000000000000000000000000-bash/bin/bash",
    `systemConfig='${top}'`,
  ];
  if (spec.accounts !== undefined) {
    const json = storeText(
      root,
      "users-groups.json",
      JSON.stringify({
        mutableUsers: spec.accounts.mutableUsers ?? true,
        users: spec.accounts.users.map((name) => ({ name, uid: null, group: "users" })),
        groups: spec.accounts.groups.map((name) => ({ name, gid: null, members: [] })),
      }),
    );
    snippets.push(
      "#### Activation script snippet users:",
      `/nix/store/${storeHash("perl")}-perl/bin/perl -w /nix/store/${storeHash("uug")}-update-users-groups.pl ${json}`,
    );
  }
  if (kind === "nix-darwin") {
    for (const m of manifests) {
      const daemon = m.endsWith("-for-users.json")
        ? "org.nixos.sops-install-secrets-for-users"
        : "org.nixos.sops-install-secrets";
      write(
        root,
        `${top}/Library/LaunchDaemons/${daemon}.plist`,
        `<plist><dict><key>ProgramArguments</key><array><string>/bin/sh</string><string>-c</string><string>/bin/wait4path /nix/store &amp;&amp; exec ${INSTALL} ${m}</string></array></dict></plist>\n`,
      );
    }
  } else if ((spec.activation ?? "classic") === "classic") {
    for (const m of manifests) {
      const forUsers = m.endsWith("-for-users.json");
      snippets.push(
        `#### Activation script snippet setupSecrets${forUsers ? "ForUsers" : ""}:`,
        `${INSTALL}${forUsers ? " -ignore-passwd" : ""} ${m}`,
      );
    }
  } else {
    for (const m of manifests) {
      const unit = m.endsWith("-for-users.json")
        ? "sops-install-secrets-for-users.service"
        : "sops-install-secrets.service";
      write(
        root,
        `${top}/etc/systemd/system/${unit}`,
        `[Service]\nType=oneshot\nExecStart=${INSTALL} ${m}\n`,
      );
    }
  }
  write(root, `${top}/activate`, `${snippets.join("\n")}\n`, 0o555);
  if (spec.fstab !== undefined) write(root, `${top}/etc/fstab`, spec.fstab);
  return top;
}
