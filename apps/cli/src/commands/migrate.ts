/** The `migrate` command; its implementation (actions/migrate.ts) loads on demand. */
import { reportCommand } from "../internal/Handler.js"

export const migrate = reportCommand(
  "migrate",
  "Apply the storage's pending schema migrations and say what was done. Safe to run again (a no-op when current).",
  () => import("../actions/migrate.js").then((m) => m.migrate)
)
