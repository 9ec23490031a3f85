import { withServerConnection } from "@token-broker/storage-sql/testing/connection"
import Pg from "pg"

/**
 * Runs `use` with a plain `pg` client on `url` (raw SQL beside the store, as an operator or an older
 * release would write it); fails with a clear message when the server does not answer.
 */
export const withClient = <A>(url: string, use: (client: Pg.Client) => Promise<A>): Promise<A> =>
  withServerConnection(
    { name: "PostgreSQL", url, variable: "DATABASE_URL" },
    async () => {
      const client = new Pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
      await client.connect()
      return client
    },
    (client) => client.end(),
    use
  )
