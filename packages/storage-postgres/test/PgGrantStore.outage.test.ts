import { startPrivateCluster } from "@token-broker/storage-postgres/testing"
import { outageSuite } from "@token-broker/storage-sql/testing"
import { PgGrantStore } from "../src/index.js"

// A private throwaway cluster: the machine's shared server is never stopped.
outageSuite({
  name: "PgGrantStore",
  startServer: startPrivateCluster,
  layer: (cluster) =>
    PgGrantStore.layer({ url: cluster.url, schema: "tb_outage", migrate: true, connectTimeout: "1 second" }),
  unreachable: () =>
    PgGrantStore.layer({
      url: "postgres://postgres@127.0.0.1:1/test",
      schema: "tb_x",
      connectTimeout: "1 second"
    }),
  unreachableMessage: /postgres storage failed during connect/
})
