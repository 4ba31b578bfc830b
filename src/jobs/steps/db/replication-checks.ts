import type pg from "pg";
import type { Endpoint } from "../../../cloud/postgres.js";
import {
  checkFreezableRole,
  listSlots,
  notCarried,
  type ReplicationSettings,
  readReplicationSettings,
} from "../../../cloud/replication.js";
import type { ReplicationConfig } from "../../../config/schema.js";
import { describeError } from "../../../errors.js";
import type { StepDeps } from "../../define-step.js";
import { compareDatabases } from "./identity.js";
import type { CheckItem } from "./preflight.js";
import { sourceConnInfo, targetConnInfo } from "./replicate.js";

/**
 * The preflight lines of a live migration (the file's `replication` section): what logical
 * replication needs on each side, and what it will not carry, each with what to do when it fails.
 * Read-only on both sides.
 */
export async function replicationChecks(
  source: pg.Client,
  target: pg.Client,
  cfg: ReplicationConfig,
): Promise<CheckItem[]> {
  const items: CheckItem[] = [];
  const [s, t] = await Promise.all([readReplicationSettings(source), readReplicationSettings(target)]);

  const walLevel = (side: string, x: ReplicationSettings, needed: boolean): CheckItem => ({
    name: `${side} wal_level = logical`,
    status: x.walLevel === "logical" ? "ok" : needed ? "fail" : "warn",
    detail:
      x.walLevel === "logical"
        ? "logical"
        : `it is ${x.walLevel}: on Neon turn on the project's logical replication (Settings → Beta → Logical Replication; it restarts the compute); on RDS set rds.logical_replication = 1 in the parameter group and reboot; on your own server ALTER SYSTEM SET wal_level = logical and restart${needed ? "" : " (needed on the target only for reverse replication, the lossless rollback)"}`,
  });
  items.push(walLevel("Source", s, true));
  items.push(walLevel("Target", t, cfg.reverse));

  items.push({
    name: "Source role may replicate",
    status: s.canReplicate ? "ok" : "fail",
    detail: s.canReplicate
      ? "it may create a publication's replication slot"
      : "the role in the source URL may not create replication slots: give it REPLICATION (Neon: use the neon_superuser owner role; RDS: GRANT rds_replication)",
  });
  items.push({
    name: "Target role may subscribe",
    status: t.canSubscribe ? "ok" : "fail",
    detail: t.canSubscribe
      ? "it may create a subscription"
      : "the role in the target URL may not create subscriptions: on RDS use the master user (rds_superuser); on PostgreSQL 16+ GRANT pg_create_subscription",
  });
  if (cfg.reverse) {
    items.push({
      name: "Reverse replication possible",
      status: t.canReplicate && s.canSubscribe ? "ok" : "fail",
      detail:
        t.canReplicate && s.canSubscribe
          ? "the target may publish and the source may subscribe (the lossless way back)"
          : `${t.canReplicate ? "" : "the target role may not create slots (RDS: GRANT rds_replication); "}${s.canSubscribe ? "" : "the source role may not create subscriptions (Neon: the neon_superuser owner role); "}or set replication.reverse: false and accept that a rollback leaves the writes made on AWS behind`,
    });
  }

  // free slots and workers on both sides
  const ours = await listSlots(source);
  const freeSlots = s.maxReplicationSlots - s.usedSlots;
  items.push({
    name: "Free replication slots",
    status: freeSlots >= 1 || ours.length > 0 ? "ok" : "fail",
    detail: `source: ${freeSlots} of ${s.maxReplicationSlots} free${ours.length ? ` (Cutover's own: ${ours.map((o) => o.name).join(", ")})` : ""}; target: ${t.maxReplicationSlots - t.usedSlots} of ${t.maxReplicationSlots} free${freeSlots < 1 && ours.length === 0 ? " — raise max_replication_slots on the source or drop an unused slot" : ""}`,
  });
  items.push({
    name: "Logical replication workers",
    status: t.maxLogicalWorkers >= 2 ? "ok" : "fail",
    detail: `target max_logical_replication_workers = ${t.maxLogicalWorkers}; source max_wal_senders = ${s.maxWalSenders}${t.maxLogicalWorkers < 2 ? " — raise max_logical_replication_workers on the target to at least 2" : ""}`,
  });

  // what replication does not carry
  const nc = await notCarried(source);
  items.push({
    name: "Every table has a replica identity",
    status: nc.withoutIdentity.length ? "fail" : "ok",
    detail: nc.withoutIdentity.length
      ? `${nc.withoutIdentity.length} table${nc.withoutIdentity.length === 1 ? " has" : "s have"} no primary key or replica identity, so their UPDATEs and DELETEs would fail on the source once published: ${nc.withoutIdentity.slice(0, 10).join(", ")}${nc.withoutIdentity.length > 10 ? ", …" : ""}. Add a primary key, or run ALTER TABLE … REPLICA IDENTITY FULL for each (slower to apply)`
      : "every published table has a primary key or a replica identity",
  });
  const notes: string[] = [
    `${nc.sequences} sequence${nc.sequences === 1 ? "" : "s"} (set from the frozen side at the switch)`,
  ];
  if (nc.materializedViews.length)
    notes.push(
      `${nc.materializedViews.length} materialized view${nc.materializedViews.length === 1 ? "" : "s"} (${nc.materializedViews.slice(0, 5).join(", ")}): refreshed on the target at the switch`,
    );
  notes.push(
    "schema changes (DDL) are not replicated: a change on either side blocks the switch until both match",
  );
  items.push({
    name: "Not carried by replication, handled at the switch",
    status: "ok",
    detail: notes.join("; "),
  });
  if (nc.unlogged.length || nc.largeObjects) {
    items.push({
      name: "Unlogged tables and large objects",
      status: "fail",
      detail: `${[
        nc.unlogged.length
          ? `unlogged tables ${nc.unlogged.slice(0, 5).join(", ")} are not in the WAL, so changes to them after the copy would be lost: make them logged (ALTER TABLE … SET LOGGED) before the copy`
          : "",
        nc.largeObjects
          ? `${nc.largeObjects} large objects are not replicated: store them in a bytea column or in the bucket, or migrate with a snapshot (remove the replication section)`
          : "",
      ]
        .filter(Boolean)
        .join("; ")}`,
    });
  }

  // the apps' roles, which the switch freezes
  for (const [side, client, role] of [
    ["source", source, cfg.appRoles.source],
    ["target", target, cfg.appRoles.target],
  ] as const) {
    const problem = await checkFreezableRole(client, role);
    items.push({
      name: `App role on the ${side} can be frozen`,
      status: problem ? (side === "target" ? "warn" : "fail") : "ok",
      detail: problem
        ? `${problem} — replication.appRoles.${side} must name the role the ${side === "source" ? "old" : "new"} app connects as${side === "target" ? " (it may be created after the restore; it must exist before the switch)" : ""}`
        : `${role}: its writes can be refused and given back in an instant, reads go on`,
    });
  }
  return items;
}

/**
 * The URLs each server's subscription connects with (`replication.sourceConnectionEnv`, and
 * `targetConnectionEnv` for the way back) must reach the other side. One that reaches the
 * subscriber's own database, under any spelling, would subscribe a database to itself: its
 * changes would loop back, and the switch's drain would wait on the wrong slot. The same identity
 * test as db.restore's "target is the source" refusal: addresses first, then from inside when the
 * URL answers from here.
 */
export async function connectionChecks(
  deps: StepDeps,
  source: Endpoint,
  target: Endpoint,
  cfg: ReplicationConfig,
  opts: { timeoutSeconds?: number } = {},
): Promise<CheckItem[]> {
  const lines: Array<{
    name: string;
    field: string;
    conn: () => Promise<{ url: string; from: string }>;
    other: Endpoint;
    otherName: string;
    wanted: string;
  }> = [
    {
      name: "Source URL for the target's subscription",
      field: "replication.sourceConnectionEnv",
      conn: async () => sourceConnInfo(deps),
      other: target,
      otherName: "target",
      wanted: "the source database as the target server reaches it",
    },
  ];
  if (cfg.reverse)
    lines.push({
      name: "Target URL for the source's subscription (the way back)",
      field: "replication.targetConnectionEnv",
      conn: () => targetConnInfo(deps),
      other: source,
      otherName: "source",
      wanted: "the target database as the source server reaches it",
    });
  const items: CheckItem[] = [];
  for (const line of lines) {
    let conn: { url: string; from: string };
    try {
      conn = await line.conn();
    } catch (err) {
      items.push({ name: line.name, status: "fail", detail: describeError(err) });
      continue;
    }
    const { same } = await compareDatabases(
      { side: line.otherName === "target" ? "source" : "target", from: conn.from, url: conn.url },
      line.other,
      opts,
    );
    items.push({
      name: line.name,
      status: same ? "fail" : "ok",
      detail: same
        ? `${conn.from} reaches the ${line.otherName} database itself (${line.other.from}), so the ${line.otherName} would subscribe to its own changes: point ${conn.from} (${line.field}) at ${line.wanted}`
        : `${conn.from}: not the ${line.otherName} database`,
    });
  }
  return items;
}
