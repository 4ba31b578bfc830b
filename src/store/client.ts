import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../generated/prisma/client.js";

/** The Prisma client every store function takes. Built once, by the deps factory. */
export type Db = PrismaClient;

/**
 * A Prisma client over node-postgres (Prisma 7's driver adapter; no query engine binary).
 *
 * @example
 * const db = createPrismaClient(state.url);
 * await db.run.findMany({ take: 10 });
 * await db.$disconnect();
 */
export function createPrismaClient(url: string): Db {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: url }) });
}
