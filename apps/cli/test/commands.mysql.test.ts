import { mysqlBackend } from "./support/backends.js"
import { commandSuite } from "./support/commandSuite.js"

commandSuite("MariaDB", mysqlBackend)
