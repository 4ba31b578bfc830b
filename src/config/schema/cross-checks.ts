/**
 * Checks across sections: ids unique across the runbook, the sections each step and `{ ref: … }`
 * needs, the SSH port open, a second approver.
 */
import type { z } from "zod";
import type { ValueRefName } from "./scalars.js";

/** Optional sections, by path. */
export type SectionPath =
  | "source.app"
  | "source.database"
  | "source.storage"
  | "target.lightsail"
  | "target.rds"
  | "target.s3"
  | "target.cloudfront"
  | "target.host"
  | "dns"
  | "pages"
  | "replication"
  | "cost";

const REF_SECTIONS: Record<ValueRefName, SectionPath> = {
  "target.lightsail.staticIp": "target.lightsail",
  "target.rds.endpoint": "target.rds",
  "target.rds.url": "target.rds",
  "target.s3.bucket": "target.s3",
  "target.cloudfront.domain": "target.cloudfront",
  "target.cloudfront.url": "target.cloudfront",
  "source.app.url": "source.app",
};

type Rec = Record<string, unknown>;
export const isRec = (v: unknown): v is Rec => typeof v === "object" && v !== null && !Array.isArray(v);
export const at = (v: unknown, ...keys: string[]): unknown =>
  keys.reduce<unknown>((o, k) => (isRec(o) ? o[k] : undefined), v);
const hasSection = (file: unknown, path: SectionPath): boolean => isRec(at(file, ...path.split(".")));
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/**
 * Steps whose type needs a section the file lacks. Each step type declares its sections
 * (`configSections` in its `defineStep`); src/jobs/catalogue.ts gathers them as STEP_SECTIONS,
 * which `loadMigrationFile` passes here as `stepSections`.
 */
export function missingStepSections(
  file: unknown,
  stepSections: Readonly<Record<string, readonly SectionPath[]>>,
): Array<{ path: Array<string | number>; message: string }> {
  const out: Array<{ path: Array<string | number>; message: string }> = [];
  arr(at(file, "runbook", "phases")).forEach((phase, p) => {
    arr(at(phase, "steps")).forEach((step, s) => {
      const uses = at(step, "uses");
      if (typeof uses !== "string") return;
      for (const section of stepSections[uses] ?? []) {
        if (!hasSection(file, section)) {
          out.push({
            path: ["runbook", "phases", p, "steps", s, "uses"],
            message: `step type \`${uses}\` needs the \`${section}\` section, which is missing — add it (migration.example.yml has one) or remove the step`,
          });
        }
      }
    });
  });
  return out;
}

/**
 * Checks across sections. Runs even when other parts of the file are invalid (so one report
 * holds everything), hence it reads the value defensively. The sections each step type needs are
 * checked by the loader ({@link missingStepSections}), from the step declarations.
 */
export function crossCheck(file: unknown, ctx: z.RefinementCtx): void {
  const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: "custom", path, message });

  // Ids: unique across phases and steps, because commands name either.
  const ids = new Map<string, string>();
  const claim = (id: unknown, where: string, path: PropertyKey[]) => {
    if (typeof id !== "string") return;
    const first = ids.get(id);
    if (first !== undefined) {
      issue(
        path,
        `\`${id}\` is already used by ${first} — ids must be unique across all phases and steps (commands name them); rename one`,
      );
    } else ids.set(id, where);
  };
  arr(at(file, "runbook", "phases")).forEach((phase, p) => {
    claim(at(phase, "id"), `runbook.phases[${p}]`, ["runbook", "phases", p, "id"]);
    arr(at(phase, "steps")).forEach((step, s) => {
      claim(at(step, "id"), `runbook.phases[${p}].steps[${s}]`, ["runbook", "phases", p, "steps", s, "id"]);
    });
  });

  // { ref: … } values need the section that provides them.
  const refs: Array<[unknown, PropertyKey[]]> = [];
  arr(at(file, "dns", "records")).forEach((r, i) => {
    refs.push([at(r, "to", "ref"), ["dns", "records", i, "to", "ref"]]);
  });
  const pagesEnv = at(file, "pages", "env");
  if (isRec(pagesEnv))
    for (const [k, v] of Object.entries(pagesEnv))
      refs.push([at(v, "to", "ref"), ["pages", "env", k, "to", "ref"]]);
  const vars = at(file, "target", "host", "appEnv", "vars");
  if (isRec(vars))
    for (const [k, v] of Object.entries(vars))
      refs.push([at(v, "ref"), ["target", "host", "appEnv", "vars", k, "ref"]]);
  for (const [ref, path] of refs) {
    if (typeof ref === "string" && ref in REF_SECTIONS) {
      const section = REF_SECTIONS[ref as ValueRefName];
      if (!hasSection(file, section))
        issue(
          path,
          `\`${ref}\` comes from the \`${section}\` section, which is missing — add it, or write the value itself`,
        );
    }
  }

  // The database lets the Lightsail static IP in: there must be one.
  if (
    at(file, "target", "rds", "ingress", "fromLightsailStaticIp") !== false &&
    hasSection(file, "target.rds")
  ) {
    if (!hasSection(file, "target.lightsail")) {
      issue(
        ["target", "rds", "ingress", "fromLightsailStaticIp"],
        "allows the Lightsail static IP, but target.lightsail is missing — add target.lightsail, or set this to false and list extraCidrs",
      );
    }
  }

  // Cutover reaches the host over SSH: the firewall must let it.
  const firewall = at(file, "target", "lightsail", "firewall");
  if (hasSection(file, "target.host") && Array.isArray(firewall)) {
    const sshPort = at(file, "target", "host", "sshPort") ?? 22;
    const open = firewall.some((rule) => {
      const from = at(rule, "port");
      const to = at(rule, "toPort") ?? from;
      return (
        typeof from === "number" &&
        typeof to === "number" &&
        typeof sshPort === "number" &&
        from <= sshPort &&
        sshPort <= to
      );
    });
    if (!open) {
      issue(
        ["target", "lightsail", "firewall"],
        `does not open the SSH port ${String(sshPort)} that target.host uses — add { port: ${String(sshPort)} } (with cidrs to limit who may connect)`,
      );
    }
  }

  // Two-person rule: someone other than the operator must be able to approve.
  const operators = arr(at(file, "access", "operators")).filter((v) => typeof v === "string");
  const approvers = arr(at(file, "access", "approvers")).filter((v) => typeof v === "string");
  const allPeople = [...operators, ...approvers].every((v) => !(v as string).startsWith("S"));
  if (allPeople && approvers.length > 0 && operators.length > 0) {
    const people = new Set([...operators, ...approvers]);
    if (people.size === 1) {
      issue(
        ["access", "approvers"],
        "holds only the one operator — a cutover needs a second person's approval; add another approver (or a user group, S…)",
      );
    }
  }
}
