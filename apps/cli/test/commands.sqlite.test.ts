import { sqliteBackend } from "./support/backends.js"
import { commandSuite } from "./support/commandSuite.js"

commandSuite("SQLite", sqliteBackend)
