import type { LivePlan } from "./live.js";

/** One DNS record as the cutover switches it: the values read from Cloudflare, and the new ones. */
export interface RecordChange {
  name: string;
  type: "A" | "AAAA" | "CNAME";
  /** the content now, as read from Cloudflare; null when the cutover creates the record */
  from: string | null;
  to: string;
  /** the TTL the record has now (lowered ahead of the cutover) */
  fromTtl: number;
  /** the TTL before the migration lowered it: the rollback puts it back */
  originalTtl: number;
  /** the TTL to set with the new value */
  ttl: number;
  proxied: boolean;
}

export interface PagesVarChange {
  name: string;
  /** the value now, as read from Cloudflare Pages; null when it is not set */
  from: string | null;
  to: string;
}

/** Exactly what a cutover changes. An approval is bound to its hash. */
export interface CutoverChange {
  environment: string;
  zone: string;
  records: RecordChange[];
  pages: { project: string; environment: string; vars: PagesVarChange[]; redeploy: boolean } | null;
  /** a live cutover: the roles frozen and the replication switched around with DNS */
  live?: LivePlan;
}

export interface PreCheck {
  name: string;
  ok: boolean;
  detail: string;
}
