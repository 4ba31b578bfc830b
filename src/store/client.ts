import { PrismaPg } from "@prisma/adapter-pg";
import type pg from "pg";
import { PrismaClient } from "../generated/prisma/client.js";

/** The Prisma client every store function takes. Built once, by the deps factory. */
export type Db = PrismaClient;

/**
 * A Prisma client over node-postgres (Prisma 7's driver adapter; no query engine binary), on
 * a pool of its own (a URL) or on the state database's one pool (src/ports.ts), which
 * `$disconnect` leaves open for its owner to end.
 *
 * @example
 * const db = createPrismaClient(state.url);
 * await db.run.findMany({ take: 10 });
 * await db.$disconnect();
 */
export function createPrismaClient(urlOrPool: string | pg.Pool): Db {
  const adapter =
    typeof urlOrPool === "string" ? new PrismaPg({ connectionString: urlOrPool }) : new PrismaPg(urlOrPool);
  return new PrismaClient({ adapter });
}
