// Will a path exist when sops-install-secrets runs at boot? Decided from the generation's /etc/fstab. Pure.
//
// The rule (nixpkgs 0148e16d, nixos/modules/tasks/filesystems.nix:257 and nixos/lib/utils.nix:62-73):
// NixOS mounts in stage 1 (the initrd) every file system that is `neededForBoot` or whose mount point is one
// of `pathsNeededForBoot`, and writes `x-initrd.mount` into that file system's options in /etc/fstab, for the
// scripted and the systemd initrd alike. Every other file system is mounted by systemd in stage 2, after the
// classic activation script — and its setupSecrets snippet — has already run (sops-nix#149). A tmpfs or ramfs
// is empty at every boot (the impermanence root), so a key kept there is gone after a reboot.

export interface FstabEntry {
  readonly device: string;
  readonly mountPoint: string;
  readonly fsType: string;
  readonly options: readonly string[];
}

export type BootAvailability =
  /** On `/` or a file system mounted in stage 1 (or no fstab entry covers the path). */
  | { readonly kind: "stage1"; readonly mount: FstabEntry | null }
  /** On a file system mounted only after the activation script ran. */
  | { readonly kind: "late-mount"; readonly mount: FstabEntry }
  /** On a tmpfs or ramfs: empty at every boot. */
  | { readonly kind: "volatile"; readonly mount: FstabEntry };

/** nixos/lib/utils.nix:62-72: these mount points are always mounted in stage 1. */
const PATHS_NEEDED_FOR_BOOT = new Set([
  "/",
  "/nix",
  "/nix/store",
  "/var",
  "/var/log",
  "/var/lib",
  "/var/lib/nixos",
  "/etc",
  "/usr",
]);
const VOLATILE = new Set(["tmpfs", "ramfs"]);

/** fstab(5) lines: `device mountpoint type options dump pass`; `\040` and `\011` stand for space and tab. */
export function parseFstab(text: string): FstabEntry[] {
  const entries: FstabEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const [device, mountPoint, fsType, options] = line.split(/\s+/).map(unescapeFstab);
    if (device === undefined || mountPoint === undefined || fsType === undefined) continue;
    if (fsType === "swap" || !mountPoint.startsWith("/")) continue;
    entries.push({ device, mountPoint: normalise(mountPoint), fsType, options: (options ?? "").split(",") });
  }
  return entries;
}

function unescapeFstab(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

function normalise(mountPoint: string): string {
  return mountPoint.length > 1 ? mountPoint.replace(/\/+$/, "") : mountPoint;
}

/** The file system a host path lives on: the entry with the longest mount point that contains it. */
export function mountOf(hostPath: string, entries: readonly FstabEntry[]): FstabEntry | null {
  let best: FstabEntry | null = null;
  for (const entry of entries) {
    const mp = entry.mountPoint;
    const contains = mp === "/" || hostPath === mp || hostPath.startsWith(`${mp}/`);
    if (contains && (best === null || mp.length >= best.mountPoint.length)) best = entry;
  }
  return best;
}

export function bootAvailability(hostPath: string, entries: readonly FstabEntry[]): BootAvailability {
  const mount = mountOf(hostPath, entries);
  if (mount === null) return { kind: "stage1", mount: null };
  if (VOLATILE.has(mount.fsType)) return { kind: "volatile", mount };
  const stage1 = PATHS_NEEDED_FOR_BOOT.has(mount.mountPoint) || mount.options.includes("x-initrd.mount");
  return stage1 ? { kind: "stage1", mount } : { kind: "late-mount", mount };
}
