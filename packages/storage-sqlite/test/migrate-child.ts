// Run by the migration test in several processes at once: node --import tsx test/migrate-child.ts <file>
import { Effect } from "effect"
import { SqliteGrantStore } from "../src/index.js"

const filename = process.argv[2] ?? ""
Effect.runPromise(SqliteGrantStore.migrate({ filename })).then(
  (result) => process.stdout.write(JSON.stringify(result)),
  (error: unknown) => {
    process.stderr.write(String(error))
    process.exit(1)
  }
)
