import { postgresBackend } from "./support/backends.js"
import { commandSuite } from "./support/commandSuite.js"

commandSuite("PostgreSQL", postgresBackend)
