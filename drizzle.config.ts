import { defineConfig } from "drizzle-kit";

// Generates SQL migrations from the schema; wrangler applies them to D1.
export default defineConfig({
  dialect: "sqlite",
  schema: "./src/data/schema.ts",
  out: "./migrations",
});
