export * as SqlGrantStore from "./SqlGrantStore.js"
export * as SqlMigrations from "./SqlMigrations.js"
export * as SqlSchema from "./SqlSchema.js"
