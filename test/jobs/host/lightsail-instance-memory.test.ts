import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { MigrationFile } from "../../../src/config/schema.js";
import type { StepDeps } from "../../../src/jobs/catalogue.js";
import { readProvisioned } from "../../../src/jobs/provisioned.js";
import { createLightsailInstanceStep } from "../../../src/jobs/steps/host/lightsail-instance.js";
import { lightsailRegion, MemoryLightsail, memoryPorts } from "../../helpers/memory-ports.js";
import { exampleFile, LIGHTSAIL_EMPTY_ACCOUNT_PLAN, stepContext, tempDir } from "./fixtures.js";

/*
 * The fast tier: lightsail.instance against in-memory ports, no server and no SDK. The
 * environment holds no AWS endpoint or credential at all: were the step to build a client of its
 * own, it would go to AWS itself and fail; it reaches Lightsail only through `deps.ports`.
 */
describe("lightsail.instance against in-memory ports", () => {
  let file: MigrationFile;
  let data: { dir: string; remove: () => Promise<void> };
  let lightsail: MemoryLightsail;
  let deps: StepDeps;

  beforeEach(async () => {
    file = await exampleFile();
    data = await tempDir();
    lightsail = new MemoryLightsail({ region: lightsailRegion(file), pendingReads: 2 });
    deps = {
      file,
      dataDir: data.dir,
      env: {},
      log: pino({ level: "silent" }),
      ports: memoryPorts({ lightsail }),
    };
  });
  afterEach(() => data.remove());

  const step = () => createLightsailInstanceStep(deps);
  const input = () => step().parse({ pollMs: 10 });

  it("plans, creates what is missing, verifies, and a rerun changes nothing", async () => {
    const plan = await step().plan(input(), stepContext({ run: { dryRun: true } }));
    expect(plan.changes.map((c) => `${c.action} ${c.target}`)).toEqual(LIGHTSAIL_EMPTY_ACCOUNT_PLAN);
    expect(lightsail.instances.size).toBe(0);

    const out = await step().run(input(), stepContext());
    const ip = lightsail.staticIps.get("gogojap-ip");
    expect(ip?.attachedTo).toBe("gogojap-api");
    expect(lightsail.instances.get("gogojap-api")).toMatchObject({
      bundleId: "medium_3_0",
      blueprintId: "ubuntu_22_04",
      keyPairName: "gogojap-key",
      tags: { project: "gogojap", "cutover:managed": "true" },
    });
    expect(lightsail.ports.get("gogojap-api")?.map((r) => r.fromPort)).toEqual([22, 80, 443]);
    expect(out.figures).toMatchObject({ staticIp: ip?.ipAddress, changed: true });
    // Lightsail made the key pair, so its private key is saved where the next steps read it
    const key = await readFile(join(data.dir, "keys", "gogojap-key.pem"), "utf8");
    expect(key).toContain("memory-gogojap-key");
    expect((await readProvisioned(data.dir, file.environment))["target.lightsail.staticIp"]).toBe(
      ip?.ipAddress,
    );

    const verified = await step().verify(input(), stepContext());
    expect(verified).toMatchObject({ ok: true, figures: { state: "running", staticIp: ip?.ipAddress } });

    const before = lightsail.calls.length;
    const again = await step().run(input(), stepContext());
    expect(again.summary).toMatch(/already as configured/);
    const writes = lightsail.calls.slice(before).filter((c) => !/^Get/.test(c));
    expect(writes).toEqual([]);
  });

  it("imports the public key of an existing private key through the SSH port", async () => {
    const path = join(data.dir, "id_rsa");
    await writeFile(path, "a private key the SSH port reads", { mode: 0o600 });
    const read: string[] = [];
    deps.env = { LIGHTSAIL_SSH_KEY_PATH: path };
    deps.ports = memoryPorts({
      lightsail,
      ssh: {
        connect: () => Promise.reject(new Error("lightsail.instance opens no SSH session")),
        publicKeyOf: async (privateKey, label) => {
          read.push(`${label}: ${privateKey}`);
          return "ssh-rsa AAAAmemory cutover";
        },
      },
    });
    await step().run(input(), stepContext());
    expect(read).toEqual([`at ${path}: a private key the SSH port reads`]);
    expect(lightsail.keyPairs.get("gogojap-key")).toEqual({ publicKey: "ssh-rsa AAAAmemory cutover" });
  });
});
