export * as SqlGrantStore from "./SqlGrantStore.js"
export * as SqlMigrations from "./SqlMigrations.js"
