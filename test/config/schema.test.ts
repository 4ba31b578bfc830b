import { describe, expect, it } from "vitest";
import { parseMigrationFile } from "../../src/config/load.js";
import {
  isSecretKeyName,
  MigrationFileSchema,
  requireSection,
  secretValueKind,
  show,
} from "../../src/config/schema.js";
import { CutoverError, ErrorCode } from "../../src/errors.js";
import { closeMatches, didYouMean, editDistance } from "../../src/text/suggest.js";

const core = {
  version: 1,
  project: "shop",
  slack: { channel: "C0123456789" },
  access: { operators: ["U0123456789"], approvers: ["S0123456789"], channels: ["C0123456789"] },
  runbook: {
    phases: [{ id: "check", title: "Check", steps: [{ id: "functional", uses: "verify.functional" }] }],
  },
};

/** The problems parseMigrationFile reports for `core` plus `extra` (as YAML through JSON). */
function problemsFor(extra: Record<string, unknown>): string[] {
  try {
    parseMigrationFile(JSON.stringify({ ...core, ...extra }), { env: {}, checkEnv: false });
  } catch (err) {
    expect((err as CutoverError).code).toBe(ErrorCode.ConfigInvalid);
    return (err as CutoverError).details.problems as string[];
  }
  return [];
}

describe("helpers", () => {
  it("measures edit distance with transpositions", () => {
    expect(editDistance("region", "region")).toBe(0);
    expect(editDistance("regoin", "region")).toBe(1);
    expect(editDistance("instanceClas", "instanceClass")).toBe(1);
    expect(editDistance("abc", "xyz")).toBe(3);
  });

  it("suggests close names only", () => {
    expect(closeMatches("instance_class", ["instanceClass", "identifier"])).toEqual(["instanceClass"]);
    expect(closeMatches("flux", ["zone", "records", "cutoverTtl"])).toEqual([]);
    expect(didYouMean("gp4", ["gp2", "gp3", "io1"])).toBe(" (did you mean `gp2` or `gp3`?)");
    expect(didYouMean("zzzz", ["gp2"])).toBe("");
  });

  it("recognises secret keys and values", () => {
    for (const key of [
      "password",
      "secretAccessKey",
      "token",
      "apiToken",
      "ANTHROPIC_API_KEY",
      "SECRET_KEY",
      "accessKeyId",
    ]) {
      expect(isSecretKeyName(key), key).toBe(true);
    }
    for (const key of [
      "masterPasswordEnv",
      "apiTokenEnv",
      "keyPairName",
      "masterPasswordStore",
      "bucket",
      "DATABASE_URL",
    ]) {
      expect(isSecretKeyName(key), key).toBe(false);
    }
    expect(secretValueKind("postgres://u:p@host/db")).toBe("a URL with a password in it");
    expect(secretValueKind("xoxb-123-abc")).toBe("a Slack token");
    expect(secretValueKind("AKIAABCDEFGHIJKLMNOP")).toBe("an AWS access key id");
    expect(secretValueKind("https://api.example.com")).toBeUndefined();
    expect(show("xoxb-123-abc")).toBe("this value");
    expect(show("gp4")).toBe("`gp4`");
  });
});

describe("MigrationFileSchema", () => {
  it("accepts the core skeleton alone (sections are optional) and rejects unknown top-level keys", () => {
    expect(MigrationFileSchema.safeParse(core).success).toBe(true);
    expect(MigrationFileSchema.safeParse({ ...core, extra: true }).success).toBe(false);
  });

  it("validates regions, CIDRs, times, time zones, URLs and env var names", () => {
    const problems = problemsFor({
      timezone: "Mars/Olympus",
      source: { app: { url: "gogojap.zeabur.app" }, database: { urlEnv: "neon_url" } },
      target: {
        aws: { region: "ap-southeast-1" },
        lightsail: {
          instanceName: "app",
          region: "ap-southeast-1",
          availabilityZone: "ap-southeast-1a",
          bundle: { cpu: 2, ramGb: 4, diskGb: 80, transferTb: 4 },
          keyPairName: "kp",
          staticIpName: "ip",
          firewall: [{ port: 22, cidrs: ["10.0.0.0/33"] }, { port: 80 }, { port: 443 }],
        },
      },
      digest: { time: "9am" },
    });
    const at = (p: string) =>
      problems.find((x) => x.startsWith(`${p}: `)) ?? `(nothing at ${p} in ${problems.join(" | ")})`;
    expect(at("timezone")).toMatch(/`Mars\/Olympus` is not an IANA time zone/);
    expect(at("source.app.url")).toMatch(/is not an http\(s\) URL — /);
    expect(at("source.database.urlEnv")).toMatch(/is not an environment variable name — /);
    expect(at("source.database.urlEnv")).not.toContain("neon_url");
    expect(at("target.lightsail.firewall[0].cidrs[0]")).toMatch(/`10\.0\.0\.0\/33` is not a CIDR block — /);
    expect(at("digest.time")).toMatch(/`9am` is not a time of day — .*HH:MM/);
    expect(problems).toHaveLength(5);
  });

  it("takes Lightsail names only as Lightsail does (\\w[\\w\\-]*\\w): no dots, no one-letter names, no '-' at an end", () => {
    const lightsail = (names: Record<string, string>) =>
      problemsFor({
        target: {
          aws: { region: "ap-southeast-1" },
          lightsail: {
            instanceName: "app_server-1",
            region: "ap-southeast-1",
            availabilityZone: "ap-southeast-1a",
            bundle: { cpu: 2, ramGb: 4, diskGb: 80, transferTb: 4 },
            keyPairName: "app-key",
            staticIpName: "app-ip",
            ...names,
          },
        },
      });
    expect(lightsail({})).toEqual([]);
    const problems = lightsail({
      instanceName: "api.gogojap.com",
      keyPairName: "k",
      staticIpName: "app-ip-",
    });
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(
      /^target\.lightsail\.instanceName: `api\.gogojap\.com` is not a valid Lightsail instance name — .*no dots/,
    );
    expect(problems.join("\n")).toMatch(/target\.lightsail\.keyPairName: `k` is not a valid key pair name/);
    expect(problems.join("\n")).toMatch(
      /target\.lightsail\.staticIpName: `app-ip-` is not a valid static IP name/,
    );
  });

  it("requires exactly one way to set the RDS master password", () => {
    const rds = {
      identifier: "app-db",
      engineVersion: "14",
      instanceClass: "db.t4g.micro",
      allocatedStorageGb: 20,
      masterUsername: "app_admin",
      dbName: "app",
      ingress: { fromLightsailStaticIp: false },
    };
    const target = (extra: object) => ({
      target: { aws: { region: "ap-southeast-1" }, rds: { ...rds, ...extra } },
    });
    expect(problemsFor(target({}))).toEqual([
      expect.stringMatching(/^target\.rds\.masterPasswordEnv: is missing — /),
    ]);
    expect(problemsFor(target({ masterPasswordEnv: "PW", masterPasswordStore: "secrets-manager" }))).toEqual([
      expect.stringMatching(/^target\.rds\.masterPasswordEnv: is set together with masterPasswordStore — /),
    ]);
    expect(problemsFor(target({ masterPasswordStore: "secrets-manager" }))).toEqual([]);
  });

  it("refuses a public database open to the whole internet", () => {
    const problems = problemsFor({
      target: {
        aws: { region: "ap-southeast-1" },
        rds: {
          identifier: "app-db",
          engineVersion: "14",
          instanceClass: "db.t4g.micro",
          allocatedStorageGb: 20,
          masterUsername: "app_admin",
          masterPasswordEnv: "PW",
          dbName: "app",
          publiclyAccessible: true,
          ingress: { fromLightsailStaticIp: false, extraCidrs: ["0.0.0.0/0"] },
        },
      },
    });
    expect(problems).toEqual([
      expect.stringMatching(
        /^target\.rds\.ingress\.extraCidrs\[0\]: `0\.0\.0\.0\/0` opens the public database/,
      ),
    ]);
  });

  it("rejects unknown placeholders in host commands", () => {
    const problems = problemsFor({
      verification: { functional: [{ id: "beat", kind: "command", command: "{venvv}/bin/celery status" }] },
    });
    expect(problems).toEqual([
      expect.stringMatching(
        /^verification\.functional\[0\]\.command: uses an unknown placeholder \{venvv\} — .*did you mean `venv`/,
      ),
    ]);
  });

  it("names the allowed kinds of a verification check", () => {
    const problems = problemsFor({ verification: { functional: [{ id: "x", path: "/health" }] } });
    expect(problems).toEqual([
      expect.stringMatching(
        /^verification\.functional\[0\]\.kind: missing — add it: one of http, sql, upload, command/,
      ),
    ]);
  });
});

describe("requireSection", () => {
  it("returns a configured section and explains a missing one", () => {
    const file = MigrationFileSchema.parse({
      ...core,
      dns: { zone: "example.com", records: [{ name: "api.example.com", type: "A", to: "203.0.113.5" }] },
    });
    expect(requireSection(file, "dns").zone).toBe("example.com");
    expect(() => requireSection(file, "target.rds")).toThrow(CutoverError);
    expect(() => requireSection(file, "target.rds")).toThrow(
      /target\.rds: missing from the migration file — add the `target\.rds` section/,
    );
  });
});
