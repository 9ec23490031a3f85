export * as SqliteGrantStore from "./SqliteGrantStore.js"
