// Run by the migration test in several processes at once: node --import tsx test/migrate-child.ts <url>
import { Effect } from "effect"
import { MysqlGrantStore } from "../src/index.js"

const [url = ""] = process.argv.slice(2)
Effect.runPromise(MysqlGrantStore.migrate({ url })).then(
  (result) => process.stdout.write(JSON.stringify(result)),
  (error: unknown) => {
    process.stderr.write(String(error))
    process.exit(1)
  }
)
