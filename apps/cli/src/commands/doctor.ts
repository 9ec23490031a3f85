/** The `doctor` command; its implementation (actions/doctor.ts) loads on demand. */
import { reportCommand } from "../internal/Handler.js"

export const doctor = reportCommand(
  "doctor",
  "Check the config, storage connectivity and migrations, the keys against stored grants, every provider's discovery and the clock; print what is wrong and how to fix it. Exits 1 when a check fails",
  () => import("../actions/doctor.js").then((m) => m.doctor)
)
