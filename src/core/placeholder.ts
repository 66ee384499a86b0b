// sops-nix's placeholder: `<SOPS:` + hex(sha256(secret name)) + `:PLACEHOLDER>` (modules/sops/templates).

const PLACEHOLDER = /<SOPS:[0-9a-f]{64}:PLACEHOLDER>/;

export function hasUnrenderedPlaceholder(text: string): boolean {
  return PLACEHOLDER.test(text);
}
