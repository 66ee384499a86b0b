// What a parsed sops file keeps alive in a long-running agent (issue 11, resident memory): its recipients,
// not the file's text. V8 keeps a substring as a slice of its parent string, so one kept recipient used to
// keep the whole file. Counted in a heap snapshot of a child process, never timed.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, ensureBuilt } from "./helpers/agent.js";
import { cleanupRoots, tempRoot } from "./helpers/host.js";

const FIXTURE = new URL("./fixtures/sops-nix/test-assets/secrets.yaml", import.meta.url);

beforeAll(ensureBuilt);

describe("a parsed sops file", () => {
  it("holds its recipients without holding the file's text", () => {
    const dir = tempRoot("sops-agent-retention-");
    try {
      const marker = `retentionmarker${process.pid}x${Date.now()}`;
      // The marker is a key of the file: in its text, never in what the parse keeps.
      const text = `${marker}: ENC[AES256_GCM,data:oOQ=,iv:5P+1UQyIYOW8xXgsvTXC17msGcA6IGB3N8n+pstfqjo=,tag:ox4rgjbb8c0vYZ2XmwRgpg==,type:str]\n${fs.readFileSync(FIXTURE, "utf8")}`;
      const file = path.join(dir, "secrets.yaml");
      fs.writeFileSync(file, text);
      const snapshot = path.join(dir, "heap.heapsnapshot");
      const parse = new URL("sops/parse.js", `file://${path.dirname(CLI)}/`).href;
      const script = `
        import * as fs from "node:fs";
        import * as v8 from "node:v8";
        import { parseSopsFile, ageRecipients } from ${JSON.stringify(parse)};
        const recipients = () => {
          const parsed = parseSopsFile(fs.readFileSync(${JSON.stringify(file)}, "utf8"), "yaml");
          if (!parsed.ok) throw new Error("the fixture does not parse");
          return ageRecipients(parsed.document);
        };
        globalThis.kept = recipients();
        // V8 keeps the subject of the last RegExp match (RegExp.lastMatch): point it elsewhere, as any
        // later match in the agent does.
        /x/.exec("x");
        v8.writeHeapSnapshot(${JSON.stringify(snapshot)});
        console.log(JSON.stringify(globalThis.kept));`;
      const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
      // The parse found the recipients it is to keep…
      expect(JSON.parse(out)).toContain("age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw");
      // …and no string in the heap holds the file's text any more (the marker appears only there).
      const strings = (JSON.parse(fs.readFileSync(snapshot, "utf8")) as { strings: string[] }).strings;
      expect(strings.filter((s) => s.includes(marker) && s.includes("sops:")).length).toBe(0);
    } finally {
      cleanupRoots();
    }
  });
});
