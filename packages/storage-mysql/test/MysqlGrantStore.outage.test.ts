import { outageSuite } from "@token-broker/storage-sql/testing"
import { MysqlGrantStore } from "../src/index.js"
import { startPrivateServer } from "../src/testing.js"

// A private throwaway server: the machine's shared MariaDB is never stopped.
outageSuite({
  name: "MysqlGrantStore",
  startServer: () => startPrivateServer(),
  layer: (server) =>
    MysqlGrantStore.layer({ url: server.url("tb_outage"), migrate: true, connectTimeout: "1 second" }),
  unreachable: () =>
    MysqlGrantStore.layer({ url: "mysql://root@127.0.0.1:1/tb_x", connectTimeout: "1 second" }),
  unreachableMessage: /mysql storage failed during connect.*ECONNREFUSED/
})
