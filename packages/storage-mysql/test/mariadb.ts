import { randomBytes } from "node:crypto"
import { withServerConnection } from "@token-broker/storage-sql/testing/connection"
import Mysql from "mysql2/promise"

/** The MariaDB the tests use: `MARIADB_URL`, else the machine's server (root, empty password, `test`). */
export const serverUrl = process.env.MARIADB_URL ?? "mysql://root@127.0.0.1:3306/test"

/** A database name no other run uses. */
export const freshDatabase = (label = "tb_test"): string => `${label}_${randomBytes(6).toString("hex")}`

/** `serverUrl` with its database replaced by `database`. */
export const urlOf = (database: string): string => {
  const url = new URL(serverUrl)
  url.pathname = `/${database}`
  return url.toString()
}

/** Runs `use` with a plain mysql2 connection; fails with a clear message when the server does not answer. */
export const withConnection = <A>(use: (conn: Mysql.Connection) => Promise<A>): Promise<A> =>
  withServerConnection(
    { name: "MariaDB", url: serverUrl, variable: "MARIADB_URL" },
    () => Mysql.createConnection({ uri: serverUrl, connectTimeout: 5_000 }),
    (conn) => conn.end(),
    use
  )

export const dropDatabase = (database: string): Promise<void> =>
  withConnection(async (conn) => {
    await conn.query(`DROP DATABASE IF EXISTS \`${database}\``)
  })

/** Every row of the store's tables as text. */
export const dumpDatabase = (database: string): Promise<string> =>
  withConnection(async (conn) => {
    const parts: Array<string> = []
    for (const table of ["grants", "pending_authorizations", "leases", "schema_migrations"]) {
      const [rows] = await conn.query(`SELECT * FROM \`${database}\`.\`${table}\``)
      parts.push(...(rows as Array<Record<string, unknown>>).map((row) => Object.values(row).join("\t")))
    }
    return parts.join("\n")
  })
