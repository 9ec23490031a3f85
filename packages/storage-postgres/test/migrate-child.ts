// Run by the migration test in several processes at once: node --import tsx test/migrate-child.ts <url> <schema>
import { Effect } from "effect"
import { PgGrantStore } from "../src/index.js"

const [url = "", schema = ""] = process.argv.slice(2)
Effect.runPromise(PgGrantStore.migrate({ url, schema })).then(
  (result) => process.stdout.write(JSON.stringify(result)),
  (error: unknown) => {
    process.stderr.write(String(error))
    process.exit(1)
  }
)
