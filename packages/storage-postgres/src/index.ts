export * as PgGrantStore from "./PgGrantStore.js"
