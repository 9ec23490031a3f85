export * as MysqlGrantStore from "./MysqlGrantStore.js"
