import { lookup as dnsLookup } from "node:dns/promises";
import { networkInterfaces } from "node:os";
import type pg from "pg";

/**
 * Which PostgreSQL server and database a connection URL reaches, whatever its spelling: another
 * host name for the same address, other query parameters, another user. Cutover never writes to
 * the source, so a target that resolves to the source is refused before anything runs.
 */
export interface DbAddress {
  /** host names as written, lower-case (a socket folder as `socket:<dir>`) */
  hosts: string[];
  /** what they resolve to; every address of this machine (loopback included) is `local` */
  addresses: string[];
  port: number;
  /** the database the connection lands in: libpq's default is the user's name */
  database: string;
}

/** Resolves a host name to its addresses; the default asks the system resolver. */
export type Lookup = (host: string) => Promise<string[]>;

const systemLookup: Lookup = async (host) => (await dnsLookup(host, { all: true })).map((a) => a.address);

/** Addresses of this machine's own interfaces: a server listening on them is also reached on 127.0.0.1. */
function localAddresses(): Set<string> {
  const own = new Set<string>(["::1", "0.0.0.0", "::"]);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) own.add(a.address);
  return own;
}

function normalise(address: string, own: Set<string>): string {
  const plain = address.replace(/^\[|\]$/g, "").replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "");
  if (/^127\./.test(plain) || own.has(plain)) return "local";
  return plain.toLowerCase();
}

/**
 * Reads a postgres:// URL as libpq does (host, port, dbname and user from the query string win
 * over the authority; an empty host is the local socket) and resolves its host names.
 */
export async function resolveDbAddress(url: string, lookup: Lookup = systemLookup): Promise<DbAddress> {
  const u = new URL(url);
  const q = u.searchParams;
  const hostText = q.get("host") ?? (decodeURIComponent(u.hostname) || "");
  const hosts = (hostText || "/var/run/postgresql")
    .split(",")
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
  const portText = q.get("port") ?? (u.port || process.env.PGPORT || "5432");
  const user = q.get("user") ?? (decodeURIComponent(u.username) || process.env.PGUSER || "postgres");
  const database = q.get("dbname") ?? (decodeURIComponent(u.pathname.replace(/^\//, "")) || user);
  const own = localAddresses();
  const addresses = new Set<string>();
  for (const h of hosts) {
    if (h.startsWith("/")) {
      addresses.add("local"); // a Unix socket reaches a server on this machine
      continue;
    }
    if (h === "localhost") {
      addresses.add("local");
      continue;
    }
    addresses.add(normalise(h, own));
    try {
      for (const a of await lookup(h.replace(/^\[|\]$/g, ""))) addresses.add(normalise(a, own));
    } catch {
      // a name that does not resolve here is compared as written
    }
  }
  return {
    hosts: hosts.map((h) => (h.startsWith("/") ? `socket:${h}` : h)),
    addresses: [...addresses],
    port: Number(portText.split(",")[0]) || 5432,
    database,
  };
}

/** True when two addresses reach the same database on the same server. */
export function sameDatabase(a: DbAddress, b: DbAddress): boolean {
  if (a.port !== b.port || a.database !== b.database) return false;
  return a.hosts.some((h) => b.hosts.includes(h)) || a.addresses.some((x) => b.addresses.includes(x));
}

/**
 * What identifies a database from inside, over a live connection: the server's start time and
 * the database's oid and name. Equal on two connections means one database, however they were
 * spelled (a proxy, a DNS alias this machine cannot see through).
 */
export async function liveIdentity(client: pg.Client): Promise<string> {
  const res = await client.query<{ id: string }>(
    `SELECT pg_postmaster_start_time()::text || '|' || d.oid::text || '|' || d.datname AS id
       FROM pg_database d WHERE d.datname = current_database()`,
  );
  return res.rows[0]?.id ?? "";
}
