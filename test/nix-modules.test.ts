// The NixOS, home-manager and nix-darwin modules, evaluated as those systems would (offline, over
// vendored nixpkgs lib / home-manager / nix-darwin modules; see test/helpers/nix.ts): what a user who
// enables services.sops-agent gets — units, launchd jobs, config files, rejected values, warnings.

import { describe, expect, it } from "vitest";
import { evalNix, evalNixOk } from "./helpers/nix.js";

const ENABLE = "{ services.sops-agent.enable = true; }";

interface NixosUnit {
  wantedBy: string[];
  wants: string[];
  after: string[];
  reloadTriggers: string[];
  serviceConfig: Record<string, unknown>;
}

describe("NixOS module", () => {
  it("runs `sops-agent run --config /etc/sops-agent/config.yaml` as a hardened dynamic user", (ctx) => {
    const unit = evalNixOk<NixosUnit>(
      ctx,
      { platform: "nixos", modules: [ENABLE] },
      "r.config.systemd.services.sops-agent",
    );
    expect(unit.serviceConfig.ExecStart).toMatch(
      /^'?\/nix\/store\/[0-9a-f]{32}-sops-agent\/bin\/sops-agent'? run --config \/etc\/sops-agent\/config\.yaml$/,
    );
    expect(unit.wantedBy).toEqual(["multi-user.target"]);
    expect(unit.serviceConfig).toMatchObject({
      DynamicUser: true,
      AmbientCapabilities: ["CAP_DAC_READ_SEARCH"],
      CapabilityBoundingSet: ["CAP_DAC_READ_SEARCH"],
      NoNewPrivileges: true,
      ProtectSystem: "strict",
      ProtectHome: "read-only",
    });
  });

  it("reloads the agent when the config changes, and only then", (ctx) => {
    const triggers = (settings: string) =>
      evalNixOk<string[]>(
        ctx,
        { platform: "nixos", modules: [ENABLE, `{ services.sops-agent.settings = ${settings}; }`] },
        "r.config.systemd.services.sops-agent.reloadTriggers",
      );
    const a = triggers("{ }");
    expect(a).toHaveLength(1);
    expect(triggers("{ }")).toEqual(a);
    expect(triggers(`{ schedule = "*/10 * * * *"; }`)).not.toEqual(a);
  });

  it("rejects a port that is not a port", (ctx) => {
    const r = evalNix(
      ctx,
      { platform: "nixos", modules: [ENABLE, "{ services.sops-agent.port = 70000; }"] },
      "r.config.services.sops-agent.port",
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/services\.sops-agent\.port/);
  });
});
