/**
 * Test servers, published as `@token-broker/storage-sql/testing/connection` (no vitest needed).
 */

/** Where the tests' database server is: what it is called, its URL, and the variable that points elsewhere. */
export interface TestServer {
  readonly name: string
  readonly url: string
  readonly variable: string
}

/**
 * Opens a connection to a test server, runs `use` with it and closes it. A server that does not answer is
 * an Error naming it (its URL without credentials) and how to point the tests elsewhere, so a missing
 * server fails the tests with the reason instead of a bare ECONNREFUSED.
 */
export const withServerConnection = async <C, A>(
  server: TestServer,
  open: () => Promise<C>,
  close: (connection: C) => Promise<unknown>,
  use: (connection: C) => Promise<A>
): Promise<A> => {
  let connection: C
  try {
    connection = await open()
  } catch (cause) {
    throw new Error(
      `${server.name} does not answer at ${server.url.replace(/\/\/[^@]*@/, "//")} (set ${server.variable}, or start the server): ${String(cause)}`
    )
  }
  try {
    return await use(connection)
  } finally {
    await close(connection)
  }
}
