/**
 * @token-broker/config: one validated configuration (a YAML or JSON file plus environment variables
 * for secrets) and the Layer it describes, so every app composes the broker the same way.
 */
export * from "./CallerSecret.js"
export * from "./Config.js"
export * from "./JsonSchema.js"
export * from "./KeyRingReload.js"
export * from "./Layers.js"
export * from "./McpServerConfig.js"
export * from "./Migrate.js"
