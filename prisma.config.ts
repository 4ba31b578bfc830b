import { defineConfig } from "prisma/config";

// The URL is only needed by `prisma migrate` where Prisma's schema engine exists; the app
// itself connects through @prisma/adapter-pg and applies migrations with its own applier.
export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/cutover" },
});
